"""gkd: the loss against TRL's own generalized_jsd_loss (the oracle), and its data policy."""
import os
from types import SimpleNamespace

import pytest
import torch

from kdbench.errors import KdbenchError
from kdbench.losses import generalized_jsd
from kdbench.methods.base import Step
from kdbench.methods.gkd import GKDParams, GKDPolicy, gkd_loss
from kdbench.teacher.outputs import TeacherOut

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_generalized_jsd_equals_trl_generalized_jsd_loss(beta, temperature):
    from trl.experimental.gkd import GKDTrainer

    torch.manual_seed(int(beta * 10 + temperature))
    s, t = torch.randn(3, 7, 50, dtype=torch.float64), torch.randn(3, 7, 50, dtype=torch.float64)
    labels = torch.randint(0, 50, (3, 7))
    labels[0, :3] = labels[2, 5:] = -100  # a prompt and padding
    ours = generalized_jsd(s, t, labels != -100, temperature=temperature, beta=beta)
    theirs = GKDTrainer.generalized_jsd_loss(s, t, labels=labels, beta=beta, temperature=temperature)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert ours.item() > 0


def test_gkd_loss_is_the_generalized_jsd_of_the_scored_tokens():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 30), torch.randn(2, 5, 30)
    mask = torch.rand(2, 5) > 0.3
    step = Step(SimpleNamespace(logits=s), TeacherOut(t), torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 6), mask)
    loss, parts = gkd_loss(step, GKDParams(beta=0.3))
    assert loss.item() == pytest.approx(generalized_jsd(s, t, mask, beta=0.3).item(), abs=1e-6) and "jsd" in parts


def test_the_policy_samples_from_the_student_with_probability_lambda():
    policy = GKDPolicy(GKDParams(lmbda=0.25))
    assert [policy.choose(1, 10, d) for d in (0.0, 0.24, 0.25, 0.9)] == ["student", "student", "gold", "gold"]
    assert GKDPolicy(GKDParams(lmbda=0.25, seq_kd=True)).choose(1, 10, 0.5) == "teacher"
    assert GKDPolicy(GKDParams(lmbda=0.0)).choose(1, 10, 0.0) == "gold"
    assert GKDPolicy(GKDParams(lmbda=1.0)).choose(1, 10, 0.999) == "student"


@pytest.mark.parametrize("bad,match", [
    ({"lmbda": 1.5}, "method.lmbda"),
    ({"lmbda": -0.1}, "method.lmbda"),
    ({"max_new_tokens": 0}, "generation length of 0"),
    ({"beta": 2.0}, "method.beta"),
    ({"temperature": 0.0}, "temperature"),
])
def test_bad_gkd_parameters_are_refused(bad, match):
    with pytest.raises(KdbenchError, match=match):
        GKDParams(**bad)
