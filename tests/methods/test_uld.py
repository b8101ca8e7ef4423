"""uld: a teacher with another tokenizer distils through the one runner; every other method keeps its refusal."""
import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from kdbench.cli import main
from kdbench.methods.base import Step
from kdbench.methods.uld import ULDParams, uld
from kdbench.teacher.outputs import TeacherOut

WORDS = "a man in a blue shirt is standing on a ladder two dogs play in the snow ein mann steht auf der leiter"


@pytest.fixture(scope="module")
def other_tokenizer_teacher(tmp_path_factory):
    """A random Llama whose tokenizer is a small BPE trained here (a few hundred words, not SmolLM2's 49,152)."""
    folder = tmp_path_factory.mktemp("bpe-teacher")
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<eos>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([WORDS] * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                        unk_token="<unk>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder, len(tokenizer)


def _args(tmp_path, cache, data_root, teacher, method="uld", suite="bleu_tiny"):
    return ["run", f"suite={suite}", f"method={method}", f"teacher={teacher}", f"data_dir={data_root}",
            f"results_dir={tmp_path / 'results'}", f"cache_dir={cache}", "train.max_length=512"]


@pytest.mark.parametrize("align", ["index", "bytes"])
def test_uld_distils_from_a_teacher_with_another_vocabulary_through_run(tmp_path, cache_dir, data_root,
                                                                      other_tokenizer_teacher, align):
    folder, vocab = other_tokenizer_teacher
    assert main(_args(tmp_path, cache_dir, data_root, folder) + [f"method.align={align}"]) == 0
    (path,) = (tmp_path / "results" / "bleu_tiny").glob("uld-*.json")
    record = json.loads(path.read_text())
    assert record["method_params"]["align"] == align
    assert record["status"] == "complete" and record["metrics"]["multi30k"]
    assert record["data"]["multi30k"]["student_tokenizer"] != record["data"]["multi30k"]["tokenizer"]
    outputs = record["teacher_outputs"]["multi30k"]
    assert "own tokenisation" in outputs["why"] and outputs["teacher_rows_without_response"] == 0
    for _, _, parts in record["loss_curves"]["multi30k"]:
        assert parts["uld"] > 0 and parts["ce"] > 0  # two vocabularies' sorted distributions differ


def test_none_beside_a_teacher_with_another_vocabulary_reads_its_own_tokenizer(tmp_path, cache_dir, data_root,
                                                                              other_tokenizer_teacher):
    """The baseline of a cross-tokenizer comparison: none reads nothing of the teacher, so the pair is accepted,
    the student trains on its own tokenisation and the teacher (its own tokenizer) is scored beside it."""
    folder, _ = other_tokenizer_teacher
    assert main(_args(tmp_path, cache_dir, data_root, folder, method="none")) == 0
    (path,) = (tmp_path / "results" / "bleu_tiny").glob("none-*.json")
    record = json.loads(path.read_text())
    data = record["data"]["multi30k"]
    assert record["status"] == "complete" and record["metrics"]["multi30k"]
    assert data["student_tokenizer"] != data["tokenizer"] and data["tokenizer"] == str(folder)
    assert record["teacher_metrics"]["multi30k"] and record["diagnostics"]["multi30k"] == {}


def test_other_methods_keep_the_one_tokenizer_refusal_and_uld_needs_a_generation_suite(
        tmp_path, cache_dir, data_root, other_tokenizer_teacher, capsys):
    folder, _ = other_tokenizer_teacher
    assert main(_args(tmp_path, cache_dir, data_root, folder, method="kd")) == 2
    err = capsys.readouterr().err
    assert "must share the tokenizer; method=uld distils across tokenizers" in err and "Traceback" not in err
    assert main(_args(tmp_path, cache_dir, data_root, folder, suite="char_tiny")) == 2
    assert "use a generation suite" in capsys.readouterr().err


def test_the_loss_uses_the_teachers_own_positions_and_falls_back_to_the_students():
    torch.manual_seed(3)
    s, t = torch.randn(1, 4, 6), torch.randn(1, 5, 9)
    labels = torch.tensor([[-100, 2, 3, 1]])
    mask = labels != -100
    teacher_mask = torch.tensor([[False, False, True, True, True]])
    step = Step(type("Out", (), {"logits": s})(), TeacherOut(t, position_mask=teacher_mask), labels,
                torch.ones(1, 5), mask)
    loss, parts = uld(step, ULDParams())
    from kdbench.losses.uld import uld_loss
    expected = uld_loss(s, t, mask, teacher_mask)
    ce = torch.nn.functional.cross_entropy(s[mask], labels[mask])
    assert parts["uld"] == pytest.approx(expected.item(), abs=1e-6)
    assert loss.item() == pytest.approx(ce.item() + 1.5 * expected.item(), abs=1e-5)
    same = Step(type("Out", (), {"logits": s})(), TeacherOut(s.clone()), labels, torch.ones(1, 5), mask)
    assert uld(same, ULDParams())[1]["uld"] == pytest.approx(0.0, abs=1e-6)  # one tokenizer, same model: 0
