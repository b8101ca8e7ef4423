"""Numerical guards: a non-finite loss or gradient stops the run with a readable message, or skips the step."""

import pytest
import torch
from torch.utils.data import DataLoader

from kdbench.config import TrainConfig, resolve
from kdbench.data.batching import Collator
from kdbench.distiller import Distiller
from kdbench.methods.base import Method
from kdbench.methods.none import NoneParams
from kdbench.errors import KdbenchError, NumericalError
from kdbench.runner import make_accelerator, train

from tests.test_runner import ROWS, tiny_bert


class _NanGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss whose gradient is not."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


def run(bad_step: int, kind: str, policy: str, steps: int = 3):
    model = tiny_bert()
    loader = DataLoader(ROWS, batch_size=4, shuffle=False, collate_fn=Collator(0, regression=False))
    cfg = TrainConfig(max_steps=steps, batch_size=4, lr=1e-2, warmup_ratio=0.0, log_every=1)
    calls = {"n": 0}

    def loss_fn(step):
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(step.student.logits, step.labels)
        if calls["n"] == bad_step:
            loss = loss * float("nan") if kind == "loss" else _NanGradient.apply(loss)
        return loss, {"ce": float(loss.detach())}

    probe = Method("nan_probe", NoneParams, lambda step, params, state: loss_fn(step), lambda params: frozenset())
    stats = train(model, Distiller(probe, NoneParams()), loader, cfg, make_accelerator("cpu"), nan_policy=policy)
    return model, stats


@pytest.mark.parametrize("kind,what", [("loss", "non-finite loss"), ("gradient", "non-finite gradient norm")])
def test_non_finite_stops_with_step_batch_and_parts(kind, what):
    with pytest.raises(NumericalError) as info:
        run(bad_step=2, kind=kind, policy="stop")
    message = str(info.value)
    assert what in message and "step 2" in message and "batch 2" in message and "nan_policy=skip" in message
    if kind == "loss":
        assert "ce=nan" in message
    assert isinstance(info.value, KdbenchError) and info.value.exit_code == 2


@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_skip_policy_skips_the_step_and_counts_it(kind):
    _, stats = run(bad_step=2, kind=kind, policy="skip")
    assert [s[0] for s in stats.skipped_steps] == [2] and stats.steps == 3


def test_a_skipped_step_leaves_the_weights_as_they_were():
    one, _ = run(bad_step=99, kind="loss", policy="skip", steps=1)  # one clean step
    skipped, stats = run(bad_step=2, kind="loss", policy="skip", steps=2)  # a clean step, then a skipped one
    assert len(stats.skipped_steps) == 1
    for a, b in zip(one.parameters(), skipped.parameters()):
        assert torch.equal(a, b)


def test_nan_policy_is_validated():
    with pytest.raises(KdbenchError, match="unknown nan_policy"):
        resolve({"nan_policy": "ignore"}, environ={})
