"""Token-level distillation on decoders: shifted targets, response-only loss, padding on either side."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from kdbench.cli import main
from kdbench.data.batching import LMCollator, lm_blocks, prompt_response
from kdbench.registry import METHODS
from kdbench.results import REQUIRED
from kdbench.runner import make_step, model_inputs, output_flags
from kdbench.teacher.outputs import TeacherOut

import kdbench.methods  # noqa: F401


def tiny_llama(seed, layers=2, heads=4):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=2, max_position_embeddings=64,
                         attn_implementation="eager")
    return LlamaForCausalLM(config).eval()


TEACHER, STUDENT = tiny_llama(0, layers=4), tiny_llama(1, layers=2, heads=2)
ROWS = [
    {"input_ids": [3, 4, 5, 6, 7, 8], "labels": [-100, -100, 5, 6, 7, 8]},  # prompt 3 4, response 5 6 7 8
    {"input_ids": [9, 10, 11], "labels": [9, 10, 11]},  # plain text: every token
]


def method_loss(name, batch, **param_values):
    method = METHODS.get(name)
    params = method.make_params(param_values)
    needs = method.needs(params) | {"logits"}
    state = method.build_state(params, STUDENT.config, TEACHER.config) if method.build_state else None
    with torch.no_grad():
        t_out = TEACHER(**model_inputs(batch), **output_flags(needs))
    s_out = STUDENT(**model_inputs(batch), **output_flags(needs))
    return method.loss(make_step(s_out, TeacherOut.of(t_out, batch), batch, False), params, state)


@pytest.mark.parametrize("name,params", [("none", {}), ("kd", {"temperature": 1.0, "alpha": 1.0}),
                                         ("kd", {"divergence": "srkl", "alpha": 1.0}), ("rlkd", {}),
                                         ("rlkd", {"k": 15, "w_logits": 0.0}), ("fakd", {"ce_weight": 0.0, "layernorm": True})])
def test_left_and_right_padding_give_the_same_loss(name, params):
    right = LMCollator(pad_id=0, padding_side="right")(ROWS)
    left = LMCollator(pad_id=0, padding_side="left")(ROWS)
    assert left["position_ids"][1].tolist() == [0, 0, 0, 0, 1, 2]  # real tokens keep positions 0, 1, 2
    loss_right, _ = method_loss(name, right, **params)
    loss_left, _ = method_loss(name, left, **params)
    assert torch.isfinite(loss_right)
    assert loss_left.item() == pytest.approx(loss_right.item(), abs=1e-4)


def test_shifted_step_scores_exactly_the_labelled_next_tokens():
    batch = LMCollator(pad_id=0)(ROWS)
    out = STUDENT(**model_inputs(batch))
    step = make_step(out, None, batch, False)
    assert step.student.logits.shape[1] == batch["input_ids"].shape[1] - 1
    # row 0: targets are positions 2..5 (the response), predicted from positions 1..4; row 1: tokens 10, 11
    assert step.position_mask.tolist() == [[False, True, True, True, True], [True, True, False, False, False]]
    loss, _ = METHODS.get("none").loss(step, METHODS.get("none").make_params({}), None)
    logp = out.logits.log_softmax(-1)
    by_hand = -torch.stack([logp[0, 1, 5], logp[0, 2, 6], logp[0, 3, 7], logp[0, 4, 8], logp[1, 0, 10], logp[1, 1, 11]]).mean()
    assert loss.item() == pytest.approx(by_hand.item(), abs=1e-5)


@pytest.mark.parametrize("name", ["none", "kd", "rlkd", "fakd"])
def test_a_fully_masked_batch_gives_a_finite_loss(name):
    rows = [{"input_ids": [3, 4, 5], "labels": [-100, -100, -100]}]
    batch = LMCollator(pad_id=0)(rows)
    loss, _ = method_loss(name, batch)
    loss.backward()
    assert torch.isfinite(loss)


def test_prompt_tokens_carry_no_loss_and_blocks_cover_the_stream():
    class Tok:
        eos_token_id = 99

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [len(w) for w in text.split()]}

    row = prompt_response(Tok(), "aa bbb", "c dd", max_length=16)
    assert row == {"input_ids": [2, 3, 1, 2, 99], "labels": [-100, -100, 1, 2, 99]}
    blocks = lm_blocks(list(range(10)), 4)
    assert [b["input_ids"] for b in blocks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def tiny_lm_dir(path, vocab_size):
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(path)
    return path


def test_vocabulary_mismatch_is_refused_naming_both_sizes(capsys, tmp_path, data_root, cache_dir):
    student = tiny_lm_dir(tmp_path / "gpt2-sized", 50257)
    code = main(["run", "suite=perplexity_tiny", "method=kd", f"student={student}", f"data_dir={data_root}",
                 f"results_dir={tmp_path / 'r'}", f"cache_dir={cache_dir}"])
    err = capsys.readouterr().err
    assert code == 2 and "vocabulary of 49152 tokens" in err and "has 50257" in err and "Traceback" not in err


def test_perplexity_suite_end_to_end_for_every_method(tmp_path, data_root, cache_dir):
    for method in ("none", "kd", "rlkd", "fakd"):
        assert main(["run", "suite=perplexity_tiny", f"method={method}", f"data_dir={data_root}",
                     f"results_dir={tmp_path}", f"cache_dir={cache_dir}"]) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "perplexity_tiny").glob("*.json")]
    assert sorted(r["method"] for r in records) == ["fakd", "kd", "none", "rlkd"]
    for r in records:
        assert all(k in r for k in REQUIRED) and r["status"] == "complete"
        ppl = r["metrics"]["wikitext2"]["perplexity"]
        assert 1.0 < ppl < 1e6 and r["teacher_metrics"]["wikitext2"]["perplexity"] > 1.0
        assert "wiki.valid.tokens" in r["data"]["wikitext2"]["notes"][0]  # offline corpus is recorded
        assert r["data"]["wikitext2"]["tokenizer"]
        assert all(torch.isfinite(torch.tensor(point[1])) for point in r["loss_curves"]["wikitext2"])
