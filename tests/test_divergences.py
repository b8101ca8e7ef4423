"""Divergences against hand-computed values, plus the invariants every loss must keep."""

import math

import pytest
import torch

from kdbench.losses import DIVERGENCES, forward_kl, jsd, reverse_kl, skew_kl, skew_reverse_kl, tvd

# Hand case: teacher logits [0, ln 3] -> p = [1/4, 3/4]; student logits [0, 0] -> q = [1/2, 1/2].
T_LOGITS = torch.tensor([[0.0, math.log(3.0)]])
S_LOGITS = torch.tensor([[0.0, 0.0]])

HAND = [
    # FKL = 0.25·ln(0.25/0.5) + 0.75·ln(0.75/0.5) = −0.173287 + 0.304099
    (forward_kl, {}, 0.130812),
    # RKL = 0.5·ln(0.5/0.25) + 0.5·ln(0.5/0.75) = 0.346574 − 0.202733
    (reverse_kl, {}, 0.143841),
    # TVD = ½(|0.25 − 0.5| + |0.75 − 0.5|)
    (tvd, {}, 0.25),
    # m = [0.375, 0.625]; KL(p‖m) = 0.25·ln(2/3) + 0.75·ln(1.2) = 0.035375;
    # KL(q‖m) = 0.5·ln(4/3) + 0.5·ln(0.8) = 0.032269; JSD = ½(0.035375 + 0.032269)
    (jsd, {"beta": 0.5}, 0.033822),
    # mix = 0.1p + 0.9q = [0.475, 0.525]; 0.25·ln(0.25/0.475) + 0.75·ln(0.75/0.525) = −0.160464 + 0.267506
    (skew_kl, {"alpha": 0.1}, 0.107043),
    # mix = 0.9p + 0.1q = [0.275, 0.725]; 0.5·ln(0.5/0.275) + 0.5·ln(0.5/0.725) = 0.298919 − 0.185782
    (skew_reverse_kl, {"alpha": 0.1}, 0.113137),
]


@pytest.mark.parametrize("fn,kwargs,expected", HAND, ids=[h[0].__name__ for h in HAND])
def test_divergence_matches_hand_computed_value(fn, kwargs, expected):
    assert fn(S_LOGITS, T_LOGITS, **kwargs).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", list(DIVERGENCES))
def test_divergence_is_zero_for_identical_logits(name):
    logits = torch.randn(3, 5, 7)
    assert DIVERGENCES[name](logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", list(DIVERGENCES))
def test_divergence_ignores_masked_positions(name):
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=torch.bool)
    fn = DIVERGENCES[name]
    base = fn(s, t, mask)
    s2, t2 = s.clone(), t.clone()
    s2[~mask] = torch.randn_like(s2[~mask]) * 50  # garbage where masked
    t2[~mask] = float("nan")
    assert fn(s2, t2, mask).item() == pytest.approx(base.item(), abs=1e-6)
    # the mean is over unmasked positions only
    per_pos = fn(s, t, reduction="none")
    assert base.item() == pytest.approx(per_pos[mask].mean().item(), abs=1e-6)


@pytest.mark.parametrize("name", list(DIVERGENCES))
def test_divergence_sends_no_gradient_to_teacher(name):
    s = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5, requires_grad=True)
    DIVERGENCES[name](s, t).backward()
    assert t.grad is None
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(DIVERGENCES))
def test_temperature_divides_both_logits(name):
    # Documented: p = softmax(t/T), q = softmax(s/T), no T² inside the loss.
    s, t = torch.randn(3, 6), torch.randn(3, 6)
    fn = DIVERGENCES[name]
    assert fn(s, t, temperature=4.0).item() == pytest.approx(fn(s / 4, t / 4).item(), abs=1e-6)


def test_high_temperature_flattens_both_distributions_to_zero_divergence():
    s, t = torch.randn(3, 6), torch.randn(3, 6)
    assert forward_kl(s, t, temperature=1e4).item() < 1e-7 < forward_kl(s, t).item()


def test_fully_masked_input_gives_zero_not_nan():
    s, t = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    assert forward_kl(s, t, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0


def test_shift_of_logits_changes_nothing():
    s, t = torch.randn(3, 6), torch.randn(3, 6)
    assert forward_kl(s + 5, t - 3).item() == pytest.approx(forward_kl(s, t).item(), abs=1e-5)


def test_skew_limits_give_plain_kls_and_zero():
    s, t = torch.randn(3, 6), torch.randn(3, 6)
    assert skew_kl(s, t, alpha=0.0).item() == pytest.approx(forward_kl(s, t).item(), abs=1e-6)
    assert skew_reverse_kl(s, t, alpha=0.0).item() == pytest.approx(reverse_kl(s, t).item(), abs=1e-6)
    assert skew_kl(s, t, alpha=1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_jsd_is_symmetric_only_at_half():
    s, t = torch.randn(3, 6), torch.randn(3, 6)
    assert jsd(s, t, beta=0.5).item() == pytest.approx(jsd(t, s, beta=0.5).item(), abs=1e-6)
    assert jsd(s, t, beta=0.1).item() == pytest.approx(jsd(t, s, beta=0.9).item(), abs=1e-6)
    assert jsd(s, t, beta=0.0).item() == pytest.approx(0.0, abs=1e-7)


def test_zero_probability_teacher_entries_contribute_nothing():
    t = torch.tensor([[0.0, float("-inf"), 0.0]])  # p = [0.5, 0, 0.5]
    s = torch.tensor([[0.0, 0.0, 0.0]])  # q = [1/3]*3
    # FKL = 2·0.5·ln(0.5/(1/3)) = ln 1.5 = 0.405465
    assert forward_kl(s, t).item() == pytest.approx(0.405465, abs=1e-6)


def test_bad_parameters_are_refused():
    s = torch.randn(2, 3)
    with pytest.raises(ValueError):
        forward_kl(s, s, temperature=0.0)
    with pytest.raises(ValueError):
        jsd(s, s, beta=1.5)
    with pytest.raises(ValueError):
        forward_kl(s, s, torch.ones(3, dtype=torch.bool))


@pytest.mark.parametrize("name", list(DIVERGENCES))
def test_gradient_stays_finite_with_zero_probability_entries(name):
    # A −inf logit (a masked vocabulary entry) on both sides must not produce NaN gradients.
    s = torch.tensor([[0.5, float("-inf"), 0.0]], requires_grad=True)
    t = torch.tensor([[0.0, float("-inf"), 1.0]])
    loss = DIVERGENCES[name](s, t)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
