import math
from types import SimpleNamespace

import pytest
import torch

from kdbench.errors import KdbenchError
from kdbench.losses import forward_kl, jsd
from kdbench.methods.base import Step
from kdbench.methods.kd import KDParams, kd_loss
from kdbench.teacher.outputs import TeacherOut


def step(s, t, labels, regression=False):
    return Step(SimpleNamespace(logits=s), TeacherOut(t), labels, torch.ones(s.shape[0], 4), None, regression)


def test_kd_is_alpha_t_squared_kl_plus_ce_hand_case():
    # T = 2: teacher logits [0, 2 ln 3] / 2 → p = [1/4, 3/4]; student [0, 0] → q = [1/2, 1/2];
    # KL = 0.130812 (see test_divergences); CE(label 1, softmax[0, 0]) = ln 2 = 0.693147.
    # L = 0.5·4·0.130812 + 0.5·0.693147 = 0.261624 + 0.346574 = 0.608198
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[0.0, 2 * math.log(3.0)]])
    loss, parts = kd_loss(step(s, t, torch.tensor([1])), KDParams(temperature=2.0, alpha=0.5))
    assert loss.item() == pytest.approx(0.608198, abs=1e-6)
    assert parts["kd"] == pytest.approx(4 * 0.130812, abs=1e-6) and parts["ce"] == pytest.approx(math.log(2), abs=1e-6)


def test_kd_alpha_one_is_pure_distillation_and_divergence_is_selectable():
    torch.manual_seed(0)
    s, t, y = torch.randn(5, 3), torch.randn(5, 3), torch.randint(0, 3, (5,))
    loss, parts = kd_loss(step(s, t, y), KDParams(temperature=1.0, alpha=1.0))
    assert loss.item() == pytest.approx(forward_kl(s, t).item(), abs=1e-6) and parts["ce"] == 0.0
    loss, _ = kd_loss(step(s, t, y), KDParams(temperature=1.0, alpha=1.0, divergence="jsd", beta=0.1))
    assert loss.item() == pytest.approx(jsd(s, t, beta=0.1).item(), abs=1e-6)


def test_kd_on_regression_uses_mse_to_teacher():
    s, t, y = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [0.0]]), torch.tensor([1.0, 2.0])
    loss, _ = kd_loss(step(s, t, y, regression=True), KDParams(alpha=0.5))
    # 0.5·mean(1, 4) + 0.5·mean(0, 0) = 1.25
    assert loss.item() == pytest.approx(1.25)


def test_kd_teacher_gets_no_gradient():
    s = torch.randn(3, 4, requires_grad=True)
    t = torch.randn(3, 4, requires_grad=True)
    kd_loss(step(s, t, torch.tensor([0, 1, 2])), KDParams())[0].backward()
    assert t.grad is None and s.grad is not None


def test_kd_refuses_unknown_divergence():
    with pytest.raises(KdbenchError, match="did you mean 'jsd'"):
        KDParams(divergence="jsdd")


@pytest.mark.parametrize("name,fn,extra", [
    ("akl", "adaptive_kl", {"mu": 0.3}),
    ("abkd", "alpha_beta_divergence", {"alpha": 0.4, "beta": 0.9}),
])
def test_kd_takes_akl_and_abkd_with_their_parameters(name, fn, extra):
    import kdbench.losses as losses
    torch.manual_seed(3)
    s, t, y = torch.randn(5, 7), torch.randn(5, 7), torch.randint(0, 7, (5,))
    params = KDParams(temperature=2.0, alpha=1.0, divergence=name, mu=0.3, ab_alpha=0.4, ab_beta=0.9)
    loss, _ = kd_loss(step(s, t, y), params)
    assert loss.item() == pytest.approx(4 * getattr(losses, fn)(s, t, temperature=2.0, **extra).item(), abs=1e-5)
