"""Generation suites (bleu, cer, rouge) end to end on tiny models, generation itself, and their bad inputs."""

import json
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from kdbench.cli import main
from kdbench.errors import KdbenchError
from kdbench.generation import generate
from kdbench.models.load import load_tokenizer
from kdbench.results import REQUIRED
from kdbench.suites.generation import _jsonl, _multi30k


def run_ok(*args):
    assert main(list(args)) == 0


@pytest.fixture(scope="module")
def generation_results(tmp_path_factory, data_root, cache_dir):
    results = tmp_path_factory.mktemp("gen-results")
    common = [f"data_dir={data_root}", f"results_dir={results}", f"cache_dir={cache_dir}"]
    run_ok("run", "suite=bleu_tiny", "method=rlkd", *common)
    run_ok("run", "suite=cer_tiny", "method=kd", *common)
    run_ok("run", "suite=rouge_tiny", "method=fakd", *common)
    run_ok("run", "suite=bleu_tiny", "method=none", "eval.decoding=sample", "eval.seeds=[1,2]", *common)
    return results


def records(results, suite):
    return [json.loads(p.read_text()) for p in (results / suite).glob("*.json")]


def test_generation_suites_write_complete_records(generation_results):
    (cer,) = records(generation_results, "cer_tiny")
    (rouge,) = records(generation_results, "rouge_tiny")
    bleu = {r["config"]["eval"]["decoding"]: r for r in records(generation_results, "bleu_tiny")}
    for r in (cer, rouge, *bleu.values()):
        assert all(k in r for k in REQUIRED) and r["status"] == "complete"
    assert 0.0 <= bleu["greedy"]["metrics"]["multi30k"]["bleu"] <= 100.0
    assert bleu["greedy"]["metrics"]["multi30k"]["cer"] >= 0.0  # metric "bleu_cer": both of one student's outputs
    assert "tok:13a" in bleu["greedy"]["data"]["multi30k"]["notes"][0]
    assert cer["metrics"]["multi30k"]["cer"] >= 0.0
    assert set(rouge["metrics"]["scitldr"]) == {"rouge1", "rouge2", "rougeL"}
    assert set(rouge["teacher_metrics"]["scitldr"]) == {"rouge1", "rouge2", "rougeL"}
    sampled = bleu["sample"]
    assert set(sampled["metrics"]["multi30k"]) == {"bleu", "bleu_std", "cer", "cer_std"}
    assert sampled["config"]["eval"]["seeds"] == ["1", "2"]


def test_the_bleu_suite_scores_cer_exactly_as_the_cer_suite_does():
    """metric "bleu_cer" reports BLEU and CER of one set of outputs, each as its own suite would."""
    from kdbench.config import SuiteInfo
    from kdbench.suites.generation import GenerationSuite

    preds = ["ein Hund läuft", "eine Frau liest ein Buch", ""]
    refs = [["ein Hund rennt"], ["eine Frau liest ein Buch", "Frau mit Buch"], ["Kinder spielen"]]
    both = GenerationSuite(SuiteInfo.load("bleu")).metric(preds, refs)
    assert list(both) == ["bleu", "cer"]  # BLEU first: the table's headline
    assert both["bleu"] == GenerationSuite(SuiteInfo.of("b", {"kind": "generation", "metric": "bleu"})).metric(preds, refs)["bleu"]
    assert both["cer"] == GenerationSuite(SuiteInfo.load("cer")).metric(preds, refs)["cer"]
    assert 0.0 < both["bleu"] < 100.0 and 0.0 < both["cer"] < 100.0


def tiny_lm(context=64, vocab=49152, seed=0):
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1,
                                        max_position_embeddings=context)).eval()


def test_batched_left_padded_generation_equals_one_prompt_at_a_time(cache_dir):
    tokenizer = load_tokenizer("smollm2-135m", cache_dir)
    model = tiny_lm()
    prompts = ["Translate English to German.", "A man", "Two dogs run across a very green field today"]
    batched = generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=3, progress=False)
    single = [generate(model, tokenizer, [p], max_new_tokens=6, batch_size=1, progress=False)[0] for p in prompts]
    assert batched == single
    a = generate(model, tokenizer, prompts, 6, sample=True, seed=5, progress=False)
    assert a == generate(model, tokenizer, prompts, 6, sample=True, seed=5, progress=False)  # seeded sampling


def test_prompt_longer_than_the_context_is_refused(capsys, tmp_path, data_root, cache_dir):
    short = tmp_path / "short-context"
    tiny_lm(context=32).save_pretrained(short)
    load_tokenizer("smollm2-135m", cache_dir).save_pretrained(short)
    common = ["method=none", f"student={short}", f"teacher={short}", "train.max_length=32", f"data_dir={data_root}",
              f"results_dir={tmp_path / 'r'}", f"cache_dir={cache_dir}"]
    # scoring the teacher comes first: a 243-token SciTLDR prompt does not fit a 32-token context
    code = main(["run", "suite=rouge_tiny", *common])
    err = capsys.readouterr().err.splitlines()[-1]
    assert code == 2 and "prompt 0 has 243 tokens; with eval.max_new_tokens=8 it exceeds the model's context of 32" in err
    # the training side: a prompt that fills train.max_length leaves no response to learn
    from kdbench.config import SuiteInfo
    from kdbench.suites.generation import GenerationSuite
    suite = GenerationSuite(SuiteInfo.load("rouge"))
    data = suite.load("scitldr", data_root, 4, 1)
    with pytest.raises(KdbenchError, match="fills all 32 tokens of train.max_length"):
        suite.train_loader(load_tokenizer("smollm2-135m", cache_dir), data, 32, 2, 0)


def test_training_examples_whose_prompt_fills_the_window_are_skipped_and_noted(data_root, cache_dir):
    from kdbench.suites.generation import render
    from kdbench.config import SuiteInfo
    from kdbench.suites.generation import GenerationSuite

    suite, tokenizer = GenerationSuite(SuiteInfo.load("rouge")), load_tokenizer("smollm2-135m", cache_dir)
    data = suite.load("scitldr", data_root, 8, 1)
    lengths = sorted(len(tokenizer(render(tokenizer, p))["input_ids"]) for p, _ in data.train.examples)
    window = (lengths[0] + lengths[-1]) // 2  # some prompts fit, some do not
    too_long = sum(n >= window for n in lengths)
    assert 0 < too_long < len(lengths)
    loader = suite.train_loader(tokenizer, data, window, 2, 0)
    assert len(loader.dataset) == len(lengths) - too_long
    before = list(data.notes)
    cfg = SimpleNamespace(train=SimpleNamespace(max_length=window), teacher_train=SimpleNamespace(max_steps=0))
    assert suite.notes(tokenizer, data, cfg)[-1].startswith(f"{too_long} of {len(lengths)} training examples skipped"
                                                            f": their prompt fills train.max_length={window}")
    assert data.notes == before  # the suite says what it skipped; nothing writes back into the data


def test_malformed_generation_data_names_the_file(tmp_path):
    (tmp_path / "multi30k").mkdir()
    for name, en, de in (("train", "a\nb\n", "x\n"), ("test_2016_flickr", "a\n", "x\n")):
        (tmp_path / "multi30k" / f"{name}.en").write_text(en)
        (tmp_path / "multi30k" / f"{name}.de").write_text(de)
    with pytest.raises(KdbenchError, match="train.en has 2 lines but train.de has 1"):
        _multi30k(tmp_path)
    broken = tmp_path / "test.jsonl"
    broken.write_text('{"source": ["a"], "target": ["b"]}\n{"source": [\n')
    with pytest.raises(KdbenchError, match=r"test.jsonl:2: broken JSON line"):
        _jsonl(broken)


def test_lmeval_suite_scores_local_tasks_in_memory(tmp_path, data_root, cache_dir):
    run_ok("run", "suite=lmeval_tiny", "method=rlkd", f"data_dir={data_root}", f"results_dir={tmp_path}",
           f"cache_dir={cache_dir}")
    (record,) = records(tmp_path, "lmeval_tiny")
    assert record["status"] == "complete"
    assert set(record["metrics"]["wikitext2"]) >= {"word_perplexity", "byte_perplexity", "bits_per_byte"}
    assert record["metrics"]["wikitext2"]["word_perplexity"] > 1.0
    assert 0.0 <= record["metrics"]["sst2"]["acc"] <= 1.0 and "acc" in record["teacher_metrics"]["sst2"]
    # both lm-eval tasks distil on the same corpus: one student is trained and scored on both
    assert record["throughput"]["sst2"]["shared_with"] == "wikitext2"
    assert len(record["loss_curves"]) == 2 and record["loss_curves"]["sst2"] == record["loss_curves"]["wikitext2"]


def test_lmeval_hub_tasks_are_refused_offline(capsys):
    assert main(["run", "suite=lmeval", "tasks=[hellaswag]"]) == 2
    assert "need the hub, which is offline" in capsys.readouterr().err


def test_wikitext_is_split_into_articles():
    from kdbench.suites.lmeval import wikitext_articles

    text = " = A = \n x \n = = Sub = = \n y \n = B = \n z \n"
    assert wikitext_articles(text) == [" = A = \n x \n = = Sub = = \n y \n", " = B = \n z \n"]


def test_predictions_are_cut_at_the_first_newline():
    from kdbench.suites.generation import first_lines

    assert first_lines(["Ein Mann.\n\nIn German, this means", "  Zwei Hunde ", ""]) == ["Ein Mann.", "Zwei Hunde", ""]


def test_selfinst_is_zero_shot_chat_evaluation(tmp_path, data_root, cache_dir):
    run_ok("run", "suite=rouge_tiny", "method=none", "tasks=[selfinst]", f"data_dir={data_root}",
           f"results_dir={tmp_path}", f"cache_dir={cache_dir}")
    (record,) = records(tmp_path, "rouge_tiny")
    assert set(record["metrics"]["selfinst"]) == {"rouge1", "rouge2", "rougeL"}
    assert "Self-Instruct is evaluation only" in record["data"]["selfinst"]["notes"][0]
    assert record["data"]["selfinst"]["train"].endswith("train.jsonl (chat format)")


def test_chat_prompts_need_a_chat_template():
    from types import SimpleNamespace

    from kdbench.suites.generation import render

    assert render(SimpleNamespace(chat_template=None), "plain") == "plain"
    with pytest.raises(KdbenchError, match="no chat template"):
        render(SimpleNamespace(chat_template=None), [{"role": "user", "content": "hi"}])


def test_gsm8k_reads_the_rlkd_authors_splits_from_the_data_root_with_their_prompt(tmp_path):
    import json as _json

    from kdbench.errors import KdbenchError
    from kdbench.suites.generation import _gsm8k
    base = tmp_path / "rlkd" / "gsm8k"
    base.mkdir(parents=True)
    rows = [{"query": "Tom has 3 apples and buys 2. How many?", "response": "3+2 = <<3+2=5>>5\n#### 5"},
            {"query": "Solve for x.\nx + 1 = 4", "response": "x = 3\n#### 3"}]
    for name in ("train_use.jsonl", "test_use.jsonl"):
        (base / name).write_text("\n".join(_json.dumps(r) for r in rows) + "\n")
    train, test = _gsm8k(tmp_path)
    assert train.examples[0] == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nTom has 3 apples and buys 2. How many?\n\n### Response:", rows[0]["response"])
    assert "### Instruction:\nSolve for x.\n\n### Input:\nx + 1 = 4\n\n### Response:" in train.examples[1][0]
    assert test.examples[1][1] == [rows[1]["response"]] and test.source.endswith("test_use.jsonl")
    (base / "test_use.jsonl").write_text('{"query": "q"}\n')
    with pytest.raises(KdbenchError, match="test_use.jsonl:1: expected a JSON object with query and response"):
        _gsm8k(tmp_path)


def test_the_rlkd_presets_train_the_papers_epochs_at_a_constant_rate_with_the_authors_union():
    from kdbench.config import resolve
    for task, steps in (("gsm8k", 234), ("dolly", 219), ("xsum", 313)):
        cfg = resolve({"suite": f"rlkd_{task}", "method": "rlkd"})
        assert (cfg.train.max_steps, cfg.train.batch_size * cfg.train.grad_accum) == (steps, 64)
        assert cfg.train.schedule == "constant" and cfg.method_params.union == "authors"


def test_teacher_scores_cached_under_another_metric_are_scored_again(tmp_path, data_root, capsys):
    """The scores' cache key names the suite, not its metric: scores cached before the bleu suite also
    reported CER lack it, and the teacher is scored again rather than shown without CER."""
    common = [f"data_dir={data_root}", f"results_dir={tmp_path / 'r'}", f"cache_dir={tmp_path / 'c'}"]
    run_ok("run", "suite=bleu_tiny", "method=none", *common)
    (scores,) = (tmp_path / "c" / "teacher_scores").glob("multi30k-*.json")
    entry = json.loads(scores.read_text())
    assert set(entry["metrics"]) == {"bleu", "cer"}
    entry["metrics"].pop("cer")  # as the bleu-only suite cached it
    scores.write_text(json.dumps(entry))
    capsys.readouterr()
    run_ok("run", "suite=bleu_tiny", "method=kd", *common)
    out = capsys.readouterr().out
    assert "teacher scores from cache" not in out and "scores cached in" in out
    (kd,) = (tmp_path / "r" / "bleu_tiny").glob("kd-*.json")
    assert set(json.loads(kd.read_text())["teacher_metrics"]["multi30k"]) == {"bleu", "cer"}
    run_ok("run", "suite=bleu_tiny", "method=rlkd", *common)
    assert "teacher scores from cache" in capsys.readouterr().out  # complete now: read, not scored again
