"""The training loop: gradient accumulation equals one big batch; a KD step never touches the teacher."""


import math

import torch
from torch.utils.data import DataLoader
from transformers import BertConfig, BertForSequenceClassification

import kdbench.methods  # noqa: F401
from kdbench.config import TrainConfig
from kdbench.data.batching import Collator
from kdbench.distiller import Distiller
from kdbench.registry import METHODS
from kdbench.runner import make_accelerator, train
from kdbench.teacher.source import LiveTeacher


def tiny_bert(seed=0):
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32,
                                                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


ROWS = [{"input_ids": [1 + i, 5, 7 + i % 3], "labels": i % 2} for i in range(8)]


def one_step(batch_size, grad_accum, method="none", teacher=None):
    model = tiny_bert()
    loader = DataLoader(ROWS, batch_size=batch_size, shuffle=False, collate_fn=Collator(0, regression=False))
    cfg = TrainConfig(max_steps=1, batch_size=batch_size, grad_accum=grad_accum, lr=1e-2, warmup_ratio=0.0, log_every=1)
    m = METHODS.get(method)
    params = m.make_params({})
    accelerator = make_accelerator("cpu")
    source = LiveTeacher(teacher, m.needs(params), accelerator) if teacher is not None else None
    stats = train(model, Distiller(m, params, None, source), loader, cfg, accelerator)
    return model, stats


def test_gradient_accumulation_equals_one_big_batch():
    big, big_stats = one_step(batch_size=8, grad_accum=1)
    small, small_stats = one_step(batch_size=4, grad_accum=2)
    for a, b in zip(big.parameters(), small.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert big_stats.examples == small_stats.examples == 8
    assert abs(big_stats.loss_curve[0][1] - small_stats.loss_curve[0][1]) < 1e-6


def test_kd_training_leaves_the_teacher_untouched():
    teacher = tiny_bert(seed=1)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    one_step(batch_size=4, grad_accum=2, method="kd", teacher=teacher)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert all(p.grad is None for p in teacher.parameters())


def test_the_schedules_after_warm_up_are_linear_constant_and_cosine():
    import pytest

    from kdbench.errors import KdbenchError
    from kdbench.runner import make_schedule

    def rates(schedule):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        cfg = TrainConfig(max_steps=10, warmup_ratio=0.2, schedule=schedule)
        sched, out = make_schedule(optimizer, cfg), []
        for _ in range(10):
            out.append(round(optimizer.param_groups[0]["lr"], 6))
            optimizer.step()
            sched.step()
        return out

    assert rates("linear") == [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]
    assert rates("constant") == [0.0, 0.5] + [1.0] * 8
    cosine = rates("cosine")  # ½(1 + cos(π·progress)) after the warm-up
    assert cosine[:3] == [0.0, 0.5, 1.0] and cosine[4] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)), abs=1e-6)
    with pytest.raises(KdbenchError, match="schedule must be one of linear, constant, cosine"):
        TrainConfig(schedule="step")


def test_precision_fp32_trains_in_fp32_on_a_gpu_too(monkeypatch):
    from kdbench.runner import mixed_precision_for

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert mixed_precision_for("auto") == "bf16"
    assert mixed_precision_for("auto", "fp32") == "no"
    assert mixed_precision_for("cpu") == "no"
