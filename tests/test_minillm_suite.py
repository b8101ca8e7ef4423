"""The MiniLLM-protocol suite: four evaluation sets, one student trained on Dolly, ROUGE-L over sampling seeds."""
import json

from kdbench.cli import main
from kdbench.models.load import load_tokenizer
from kdbench.suites.minillm import PROMPT_TOKENS, MiniLLMSuite, cut_prompt


def test_one_student_is_scored_on_the_four_sets_with_rouge_l_over_the_seeds(tmp_path, data_root, cache_dir):
    args = ["run", "suite=minillm_tiny", "method=kd", f"data_dir={data_root}", f"results_dir={tmp_path}",
            f"cache_dir={cache_dir}"]
    assert main(args) == 0
    (path,) = (tmp_path / "minillm_tiny").glob("kd-*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "complete" and set(record["metrics"]) == {"dolly", "self_inst", "vicuna", "sinst"}
    for task, scores in record["metrics"].items():
        assert set(scores) == {"rougeL", "rougeL_std"}, task  # the protocol's one score, mean and spread
    dolly = record["data"]["dolly"]
    assert dolly["train_rows"] == 16 and "Dolly dev" in dolly["validation"] and "(GPT-2 ids, decoded)" in dolly["train"]
    assert any("Unnatural Instructions" in note for note in dolly["notes"])
    assert record["data"]["sinst"]["eval_test"].endswith("sinst/11_/valid.jsonl")
    examples = json.loads((path.parent / record["examples_file"]).read_text())
    assert set(examples["dolly"]["test"]["predictions"]) == {"seed_10", "seed_20"}


def test_prompts_keep_their_first_256_tokens_and_sinst_keeps_all_references(data_root, cache_dir):
    tokenizer = load_tokenizer("smollm2-135m", cache_dir)
    long = "word " * 600
    cut = cut_prompt(tokenizer, long)
    assert len(tokenizer(cut, add_special_tokens=False)["input_ids"]) <= PROMPT_TOKENS < len(long.split())
    assert cut_prompt(tokenizer, "short prompt") == "short prompt"
    suite = MiniLLMSuite()
    data = suite.load("sinst", data_root, 0, 0)
    assert len(data.evals["test"].examples) == 1694 and len(data.train.examples) == 11435
    assert sum(len(refs) for _, refs in data.evals["test"].examples) == 2562
    suite.hold_out(data, 10)
    assert len(data.val.examples) == 10 and data.val.source.endswith("dev.jsonl (first 10)")


def test_the_leaderboard_caption_says_cpu_subset_and_notes_the_published_reference():
    from kdbench.config import SuiteInfo
    from kdbench.leaderboard import suite_text

    version = SuiteInfo.load("minillm").version
    description, reference = suite_text("minillm", version)
    assert "CPU subset" in description and "MiniLLM Table 1" in reference
    assert suite_text("minillm", "not-" + version) == ("", "")  # records of another version: nothing claimed
    assert suite_text("no_such_suite", "1") == ("", "")


def test_a_table_of_another_pair_than_the_suites_says_so_beside_the_description():
    from kdbench.config import SuiteInfo
    from kdbench.leaderboard import suite_text

    version = SuiteInfo.load("bleu").version
    own, _ = suite_text("bleu", version, teacher="smollm2-135m", student="smollm2-6l")
    assert own == SuiteInfo.load("bleu").description  # the suite's own pair: the description as written
    other, _ = suite_text("bleu", version, teacher="gemma3-270m", student="smollm2-135m")
    assert other.startswith(own) and "this table's models: gemma3-270m -> smollm2-135m" in other


def test_the_four_sets_share_one_fine_tuned_teacher(tmp_path, data_root, cache_dir, capsys):
    """They all train on Dolly: the teacher is fine-tuned once, then reused for the other three sets."""
    args = ["run", "suite=minillm_tiny", "method=kd", "teacher_train.max_steps=2", "teacher_train.batch_size=4",
            f"data_dir={data_root}", f"results_dir={tmp_path}", f"cache_dir={tmp_path / 'cache'}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("fine-tuning teacher") == 1 and out.count("teacher reused from memory") == 3
    assert [p.name.split("-")[0] for p in (tmp_path / "cache" / "teachers").glob("[!.]*")] == ["dolly"]
