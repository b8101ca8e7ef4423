"""The causal-LM GLUE form: verbalizers, the answer position, label scoring, and RLKD's live rank term."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kdbench.cli import main
from kdbench.config import resolve
from kdbench.errors import KdbenchError
from kdbench.experiment import suite_of
from kdbench.losses import forward_kl, rank_loss
from kdbench.methods.base import Step
from kdbench.models.load import load_tokenizer
from kdbench.registry import METHODS
from kdbench.runner import make_step, model_inputs
from kdbench.teacher.outputs import TeacherOut
from kdbench.suites.glue_lm import AnswerLM, GlueLMSuite, two_hot, verbalize

import kdbench.methods  # noqa: F401

DEFAULT_TASKS = ("sst2", "stsb")  # suites/glue.toml


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("smollm2-135m")


def test_default_label_words_are_single_tokens(tokenizer):
    assert verbalize(tokenizer, "sst2", ("negative", "positive")) == (0, [3524, 2731])  # " negative", " positive"
    # SmolLM2 writes " 3" as " " + "3": the space ends the prompt and each digit is one token
    extra, ids = verbalize(tokenizer, "stsb", tuple("012345"))
    assert extra == 1 and len(set(ids)) == 6 and [tokenizer.decode([i]) for i in ids] == list("012345")


def test_a_word_the_tokenizer_splits_is_refused_by_name(tokenizer):
    with pytest.raises(KdbenchError, match="'wonderfully-good' of sst2 is not one token"):
        verbalize(tokenizer, "sst2", ("bad", "wonderfully-good"))
    with pytest.raises(KdbenchError, match="share a token"):
        verbalize(tokenizer, "sst2", ("good", "good"))


def test_two_hot_targets_keep_the_score_as_their_expected_value():
    for score in (0.0, 1.25, 3.6, 4.0, 5.0):
        index, weights = two_hot(score, 6)
        assert sum(i * w for i, w in zip(index, weights)) == pytest.approx(score) and sum(weights) == pytest.approx(1)
    assert two_hot(3.6, 6) == ([3, 4], pytest.approx([0.4, 0.6]))


def tiny_lm(seed, vocab=49152):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(config).eval()


def test_the_answer_position_is_the_last_real_token_of_each_row():
    lm = tiny_lm(0, vocab=50)
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    got = AnswerLM(lm)(input_ids=ids, attention_mask=mask).logits
    with torch.no_grad():
        full_a = lm(input_ids=ids[:1]).logits[0, -1]
        full_b = lm(input_ids=ids[1:, :2]).logits[0, -1]
    assert got.shape == (2, 50)
    assert torch.allclose(got[0], full_a, atol=1e-5) and torch.allclose(got[1], full_b, atol=1e-5)


def suite_and_data(task, data_root, tokenizer, rows=32):
    suite = GlueLMSuite()
    data = suite.load(task, data_root, rows, rows)
    suite.hold_out(data, 8)
    return suite, data


def test_labels_predictions_and_stsb_expected_value(tokenizer, data_root):
    suite, data = suite_and_data("stsb", data_root, tokenizer)
    features = suite.encode(tokenizer, data, data.train.examples[:4], 128)
    assert all(tokenizer.decode([f["input_ids"][-1]]) == " " for f in features)  # the space ends the prompt
    batch = suite.collator(tokenizer, data)(features)
    assert batch["target_ids"].shape == (4, 2) and torch.allclose(batch["target_weights"].sum(-1), torch.ones(4))
    logits = torch.full((2, len(tokenizer)), -1e4)
    logits[0, data.label_ids[2]] = 10.0  # all mass on "2"
    logits[1, data.label_ids[0]] = logits[1, data.label_ids[5]] = 10.0  # half "0", half "5"
    assert suite.label_predictions(data, logits) == pytest.approx([2.0, 2.5], abs=1e-4)
    suite, data = suite_and_data("sst2", data_root, tokenizer)
    suite.encode(tokenizer, data, data.train.examples[:1], 128)
    logits = torch.zeros(2, len(tokenizer))
    logits[0, data.label_ids[1]] = 3.0  # " positive" wins
    logits[1, data.label_ids[0]] = 1.0
    logits[1, 100] = 50.0  # a non-label token's logit does not count
    assert suite.label_predictions(data, logits) == [1, 0]


def test_soft_targets_make_the_supervised_loss_a_two_hot_cross_entropy():
    from kdbench.methods.base import supervised_loss

    z = torch.randn(3, 20)
    ids = torch.tensor([[2, 3], [0, 1], [4, 5]])
    w = torch.tensor([[0.4, 0.6], [1.0, 0.0], [0.5, 0.5]])
    step = Step(type("O", (), {"logits": z})(), None, torch.zeros(3, dtype=torch.long), torch.ones(3, 4),
                soft_targets=(ids, w))
    expected = -(F.log_softmax(z, -1).gather(-1, ids) * w).sum(-1).mean()
    assert supervised_loss(step).item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("task", DEFAULT_TASKS)
def test_rlkd_rank_term_has_a_live_gradient_on_every_default_task(task, tokenizer, data_root):
    """At the answer position the rank term ranks the vocabulary's top-5: its gradient on the student is not ~0
    (on a 2-class head it is ~4e-9: the Spearman correlation of two points is always ±1)."""
    suite, data = suite_and_data(task, data_root, tokenizer)
    batch = suite.collator(tokenizer, data)(suite.encode(tokenizer, data, data.train.examples[:8], 128))
    student, teacher = AnswerLM(tiny_lm(1)), AnswerLM(tiny_lm(0))
    with torch.no_grad():
        t_out = teacher(**model_inputs(batch))

    def grad_norm(loss_of):
        student.zero_grad()
        step = make_step(student(**model_inputs(batch)), TeacherOut.of(t_out, batch), batch, data.regression)
        loss_of(step).backward()
        return torch.sqrt(sum((p.grad ** 2).sum() for p in student.parameters() if p.grad is not None)).item()

    rank = grad_norm(lambda s: rank_loss(s.student.logits, s.teacher.logits, k=5))
    logits = grad_norm(lambda s: forward_kl(s.student.logits, s.teacher.logits))
    assert rank > 1e-4 * logits > 0, (rank, logits)
    params = METHODS.get("rlkd").make_params({})
    assert METHODS.get("rlkd").check_outputs(params, len(tokenizer), task, True) == {"effective_k": 5,
                                                                                      "rank_term": "live"}


def _run(tmp_path, data_root, cache_dir, *extra):
    out = tmp_path / "results"
    assert main(["run", "suite=glue_tiny", f"data_dir={data_root}", f"results_dir={out}", f"cache_dir={cache_dir}",
                 *extra]) == 0
    return json.loads(sorted(out.glob("glue_tiny/*.json"))[-1].read_text())


@pytest.mark.parametrize("task", DEFAULT_TASKS)
def test_w_rank_changes_the_student_on_every_default_task(task, tmp_path, data_root, cache_dir):
    with_rank = _run(tmp_path / "a", data_root, cache_dir, "method=rlkd", f"tasks=[{task}]", "method.w_rank=2")
    without = _run(tmp_path / "b", data_root, cache_dir, "method=rlkd", f"tasks=[{task}]", "method.w_rank=0")
    assert with_rank["method_checks"][task] == {"effective_k": 5, "rank_term": "live"}
    assert with_rank["student_sha256"][task] != without["student_sha256"][task]
    assert with_rank["loss_curves"][task][-1][2]["rank"] > 0


def test_every_method_runs_the_causal_lm_form_end_to_end(tmp_path, data_root, cache_dir):
    for method in ("none", "kd", "fakd"):
        record = _run(tmp_path / method, data_root, cache_dir, f"method={method}")
        assert record["status"] == "complete" and 0 <= record["metrics"]["sst2"]["accuracy"] <= 100
        assert record["trivial"]["sst2"]["majority class"]["accuracy"] > 40
        diagnostics = record["diagnostics"]["sst2"]
        assert {"agree@1", "kl_teacher", "ece", "mor@5", "cr@5"} <= set(diagnostics)
        if method != "none":  # the answer position's full distribution, cached exactly (float32 logits)
            assert record["teacher_outputs"]["sst2"]["kind"] == "logits"


def test_the_flagship_command_runs_the_causal_lm_form():
    cfg = resolve({"suite": "glue", "method": "rlkd"})
    suite, info = suite_of(cfg)
    assert isinstance(suite, GlueLMSuite) and info.kind == "glue_lm" and info.version == cfg.suite_info.version
    assert cfg.teacher == "smollm2-135m" and cfg.method_params.k == 5


def test_the_encoder_form_stays_available_and_refuses_a_dead_rank_term(tmp_path, data_root, cache_dir, capsys):
    code = main(["run", "suite=glue_enc_tiny", "method=rlkd", f"data_dir={data_root}",
                 f"results_dir={tmp_path / 'r'}", f"cache_dir={cache_dir}"])
    assert code == 2 and "Spearman correlation of the top-2 is always" in capsys.readouterr().err
    assert main(["run", "suite=glue_enc_tiny", "method=rlkd", "method.allow_small_head=true", f"data_dir={data_root}",
                 f"results_dir={tmp_path / 'r'}", f"cache_dir={cache_dir}"]) == 0
    record = json.loads(next(Path(tmp_path / "r").glob("glue_enc_tiny/*.json")).read_text())
    assert record["method_checks"]["sst2"]["rank_term"] == "constant"
    assert record["method_checks"]["sst2"]["allow_small_head"] is True
