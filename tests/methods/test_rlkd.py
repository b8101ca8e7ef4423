from types import SimpleNamespace

import pytest
import torch

from kdbench.errors import KdbenchError
from kdbench.losses import forward_kl, rank_loss, reverse_kl, topk_overlap
from kdbench.methods import rlkd as rlkd_module
from kdbench.methods.base import Step
from kdbench.methods.rlkd import RLKDParams, rlkd_loss
from kdbench.teacher.outputs import TeacherOut


def step(s, t, mask=None, regression=False):
    return Step(SimpleNamespace(logits=s), TeacherOut(t), torch.zeros(s.shape[0], dtype=torch.long),
                torch.ones(s.shape[0], 4), mask, regression)


def test_rlkd_is_two_rank_plus_forward_kl_by_default():
    torch.manual_seed(0)
    s, t = torch.randn(4, 6, 40), torch.randn(4, 6, 40)
    mask = torch.rand(4, 6) > 0.3
    loss, parts = rlkd_loss(step(s, t, mask), RLKDParams())
    expected = 2 * rank_loss(s, t, mask, k=5) + forward_kl(s, t, mask)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert parts["ce"] == 0.0  # no ground-truth CE (RLKD §3.3)


def test_rlkd_dynamic_weights_logits_loss_by_topk_overlap():
    torch.manual_seed(1)
    s, t = torch.randn(3, 30), torch.randn(3, 30)
    loss, _ = rlkd_loss(step(s, t), RLKDParams(dynamic=True, logits_loss="rkl", k=5))
    weighted = (topk_overlap(s, t, 5) * reverse_kl(s, t, reduction="none")).mean()
    assert loss.item() == pytest.approx((2 * rank_loss(s, t, k=5) + weighted).item(), abs=1e-5)


def test_rlkd_clamps_k_to_the_label_count_and_drops_rank_for_regression():
    s, t = torch.randn(8, 2), torch.randn(8, 2)
    loss, _ = rlkd_loss(step(s, t), RLKDParams(k=5))
    assert loss.item() == pytest.approx((2 * rank_loss(s, t, k=2) + forward_kl(s, t)).item(), abs=1e-5)
    s1, t1 = torch.randn(8, 1), torch.randn(8, 1)
    loss, parts = rlkd_loss(step(s1, t1, regression=True), RLKDParams())
    assert parts["rank"] == 0.0 and loss.item() == pytest.approx(((s1 - t1) ** 2).mean().item(), abs=1e-6)


def test_rlkd_falls_back_to_logits_loss_when_rank_is_not_finite(monkeypatch):
    monkeypatch.setattr(rlkd_module, "rank_loss", lambda *a, **k: torch.tensor(float("nan")))
    s, t = torch.randn(3, 10), torch.randn(3, 10)
    loss, parts = rlkd_loss(step(s, t), RLKDParams())
    assert loss.item() == pytest.approx(forward_kl(s, t).item(), abs=1e-6) and parts["rank_nonfinite"] == 1.0


def test_rlkd_is_zero_for_identical_logits_and_spares_the_teacher():
    s = torch.randn(4, 20, requires_grad=True)
    t = s.detach().clone().requires_grad_(True)
    loss, _ = rlkd_loss(step(s, t), RLKDParams(union="exact"))
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    loss.backward()
    assert t.grad is None


def test_rlkd_params_are_validated():
    with pytest.raises(KdbenchError, match="union"):
        RLKDParams(union="set")
    with pytest.raises(KdbenchError, match="logits_loss"):
        RLKDParams(logits_loss="kl")
    with pytest.raises(KdbenchError, match="k must be"):
        RLKDParams(k=0)


def test_akl_plus_r_is_rlkd_with_the_akl_logits_loss():
    # RLKD Table 2's "AKL+R": one key, method.logits_loss=akl.
    from kdbench.losses import adaptive_kl
    torch.manual_seed(4)
    s, t = torch.randn(3, 5, 30), torch.randn(3, 5, 30)
    mask = torch.rand(3, 5) > 0.3
    loss, parts = rlkd_loss(step(s, t, mask), RLKDParams(logits_loss="akl"))
    assert loss.item() == pytest.approx((2 * rank_loss(s, t, mask, k=5) + adaptive_kl(s, t, mask)).item(), abs=1e-5)
