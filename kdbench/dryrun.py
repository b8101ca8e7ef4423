"""`dry_run=true` on a paper-scale preset: validate it offline on tiny random models of its family.

    kdbench run suite=rlkd_gsm8k method=rlkd dry_run=true

A preset names its architecture family (`family = "llama"` or `"gpt2"` in its
suite file). The dry run builds a tiny teacher (4 layers) and a narrower tiny
student (2 layers, half the width and heads) of that family with a shared
vocabulary, makes a prompt/response batch padded on `data.padding_side`, and
runs one real optimizer step of the preset's method through the shared runner:
it checks the logits' shapes, that exactly the response tokens are scored, that
the loss is finite and that the student's weights moved.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from kdbench.config import RunConfig, TrainConfig
from kdbench.data.batching import LMCollator
from kdbench.errors import KdbenchError
from kdbench.registry import METHODS
from kdbench.runner import make_accelerator, make_step, model_inputs, output_flags, train
from kdbench.distiller import Distiller
from kdbench.teacher.outputs import TeacherOut
from kdbench.teacher.source import LiveTeacher

VOCAB = 128


def tiny_model(family: str, layers: int, width: int, heads: int, eager: bool, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    attn = "eager" if eager else "sdpa"
    if family == "llama":
        config = LlamaConfig(vocab_size=VOCAB, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                             num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=128,
                             attn_implementation=attn)
        return LlamaForCausalLM(config)
    if family == "gpt2":
        config = GPT2Config(vocab_size=VOCAB, n_embd=width, n_layer=layers, n_head=heads, n_positions=128,
                            attn_pdrop=0.0, attn_implementation=attn)
        return GPT2LMHeadModel(config)
    raise KdbenchError(f"unknown model family {family!r} in the suite file; dry runs know llama and gpt2")


def dry_check(cfg: RunConfig, family: str) -> str:
    method = METHODS.get(cfg.method)
    params = cfg.method_params
    needs = method.needs(params)
    eager = "attentions" in needs
    teacher = tiny_model(family, 4, 64, 4, eager, seed=0).eval()
    student = tiny_model(family, 2, 32, 2, eager, seed=cfg.seed)
    state = method.build_state(params, student.config, teacher.config) if method.build_state else None
    rows = [{"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, -100, 8, 9, 10]},
            {"input_ids": [11, 12, 13], "labels": [-100, 12, 13]}]
    collate = LMCollator(pad_id=0, padding_side=cfg.data.padding_side)
    batch = collate(rows)
    with torch.no_grad():
        out = student(**model_inputs(batch), **output_flags(needs))
    step = make_step(out, TeacherOut.of(out, batch), batch, False)
    if out.logits.shape != (2, batch["input_ids"].shape[1], VOCAB):
        raise KdbenchError(f"dry run: logits have shape {tuple(out.logits.shape)}")
    if int(step.position_mask.sum()) != 3 + 2:
        raise KdbenchError(f"dry run: {int(step.position_mask.sum())} positions scored, expected the 5 response tokens")
    before = [p.detach().clone() for p in student.parameters()]
    one = TrainConfig(max_steps=1, batch_size=2, lr=cfg.train.lr, warmup_ratio=0.0, log_every=1,
                      max_length=max(8, cfg.train.max_length))
    loader = DataLoader(rows, batch_size=2, collate_fn=collate)
    accelerator = make_accelerator("cpu")
    source = LiveTeacher(teacher, needs, accelerator) if needs else None
    stats = train(student, Distiller(method, params, state, source), loader, one, accelerator)
    loss = stats.loss_curve[0][1]
    if not torch.isfinite(torch.tensor(loss)):
        raise KdbenchError(f"dry run: the {cfg.method} loss is not finite ({loss})")
    moved = any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
    if not moved:
        raise KdbenchError("dry run: one optimizer step left the student unchanged")
    return (f"dry run ok: {family} family, method {cfg.method}, teacher 4x64 -> student 2x32, "
            f"{cfg.data.padding_side} padding, 5 response tokens scored, loss {loss:.4f}, one optimizer step")
