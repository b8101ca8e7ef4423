"""AKL and ABKD's α-β divergence: hand values, their special cases, and their place in the divergence family
(the family-wide invariants, masks, no teacher gradient, temperature, −inf entries, run in
tests/test_divergences.py over every entry of DIVERGENCES)."""

import math

import pytest
import torch

from kdbench.losses import adaptive_kl, alpha_beta_divergence, forward_kl, reverse_kl
from kdbench.losses.adaptive_kl import head_mask


def _logits(*probs, dtype=torch.float32):
    return torch.tensor([[math.log(p) for p in probs]], dtype=dtype)


P, Q = _logits(0.25, 0.75), _logits(0.5, 0.5)  # teacher p = [1/4, 3/4], student q = [1/2, 1/2]


def test_akl_hand_value_with_unequal_head_and_tail_gaps():
    # p = [0.05, 0.35, 0.6], q = [0.3, 0.2, 0.5]. Head (mu 0.5): {2} (0.6 reaches it alone).
    # gaps 0.25, 0.15, 0.1: g_head = 0.1, g_tail = 0.4, weights 0.2 / 0.8.
    # KL(p‖q) = 0.05 ln(1/6) + 0.35 ln 1.75 + 0.6 ln 1.2 = 0.215670; KL(q‖p) = 0.3 ln 6 + 0.2 ln(4/7) + 0.5 ln(5/6)
    # = 0.334444; AKL = 0.2·0.215670 + 0.8·0.334444 = 0.310689
    t, s = _logits(0.05, 0.35, 0.6), _logits(0.3, 0.2, 0.5)
    assert adaptive_kl(s, t).item() == pytest.approx(0.310689, abs=1e-6)


def test_akl_with_equal_gaps_is_the_mean_of_the_two_kls():
    # p = [1/4, 3/4], q = [1/2, 1/2]: both gaps 0.25, so ½·FKL + ½·RKL = ½(0.130812 + 0.143841)
    assert adaptive_kl(Q, P).item() == pytest.approx(0.137327, abs=1e-6)
    assert adaptive_kl(Q, P).item() == pytest.approx(0.5 * (forward_kl(Q, P) + reverse_kl(Q, P)).item(), abs=1e-6)


def test_akl_head_is_found_in_sorted_order_and_named_in_vocabulary_order():
    p = torch.tensor([[0.05, 0.6, 0.1, 0.25]])  # sorted: 0.6 (id 1), 0.25 (id 3), ...
    assert head_mask(p, 0.5).tolist() == [[False, True, False, False]]
    assert head_mask(p, 0.7).tolist() == [[False, True, False, True]]  # 0.6 < 0.7: the next entry crosses it
    # The authors' code (cumulative mass <= mu, plus the first) would keep {0} of [0.4, 0.3, 0.3]; here the
    # entry that crosses mu is in: {0, 1} (METHODS.md §7, "reaches mu").
    assert head_mask(torch.tensor([[0.4, 0.3, 0.3]]), 0.5).tolist() == [[True, True, False]]
    assert head_mask(p, 1.0).all()


def test_akl_weights_are_constants():
    # The gradient is that of w·FKL + (1−w)·RKL with w fixed at its value (the authors' detached weights).
    torch.manual_seed(0)
    t = torch.randn(4, 9)
    s = torch.randn(4, 9, requires_grad=True)
    adaptive_kl(s, t, reduction="none").sum().backward()
    with torch.no_grad():
        p, q = t.softmax(-1), s.softmax(-1)
        gap = (p - q).abs()
        w = (gap * head_mask(p, 0.5)).sum(-1) / gap.sum(-1)
    s2 = s.detach().clone().requires_grad_(True)
    (w * forward_kl(s2, t, reduction="none") + (1 - w) * reverse_kl(s2, t, reduction="none")).sum().backward()
    assert torch.allclose(s.grad, s2.grad, atol=1e-6)


def test_akl_refuses_a_head_mass_outside_0_1():
    with pytest.raises(ValueError, match="mu must be in"):
        adaptive_kl(Q, P, mu=0.0)


@pytest.mark.parametrize("alpha,beta,expected", [
    (0.2, 0.7, 0.151990),  # ABKD's GPT-2 default: −1/(αβ)·Σ[p^α q^β − α/(α+β) p^(α+β) − β/(α+β) q^(α+β)]
    (1.0, 0.0, 0.130812),  # KL(p‖q)
    (0.0, 1.0, 0.143841),  # KL(q‖p)
    (0.5, 0.5, 0.136297),  # 2·Σ(√p − √q)² = 2·(0.042893 + 0.025255)
    (0.0, 0.0, 0.322427),  # ½·Σ(ln p − ln q)² = ½·(0.480453 + 0.164402)
    (0.5, -0.5, 0.302771),  # 1/α²·Σ[ln(q^α/p^α) + p^α/q^α − 1]
], ids=["default", "fkl", "rkl", "hellinger", "origin", "alpha_plus_beta_0"])
def test_alpha_beta_hand_values(alpha, beta, expected):
    assert alpha_beta_divergence(Q, P, alpha=alpha, beta=beta).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("limit,near", [
    ((0.0, 0.7), (1e-6, 0.7)),
    ((0.2, 0.0), (0.2, 1e-6)),
    ((0.5, -0.5), (0.5, -0.5 + 1e-6)),
    ((-0.3, 0.3), (-0.3 + 1e-6, 0.3)),
    ((0.0, 0.0), (1e-4, 1e-4)),
    ((0.0, -1.0), (1e-6, -1.0)),
], ids=["alpha0", "beta0", "sum0", "sum0_negative_alpha", "origin", "alpha0_negative_beta"])
def test_alpha_beta_limits_are_continuous_with_the_general_form(limit, near):
    torch.manual_seed(1)
    t, s = torch.randn(5, 11, dtype=torch.float64), torch.randn(5, 11, dtype=torch.float64)
    at_limit = alpha_beta_divergence(s, t, alpha=limit[0], beta=limit[1]).item()
    general = alpha_beta_divergence(s, t, alpha=near[0], beta=near[1]).item()
    assert general == pytest.approx(at_limit, rel=1e-3)
    assert at_limit > 0


def test_alpha_beta_kl_cases_equal_the_kls_on_random_inputs():
    torch.manual_seed(2)
    t, s = torch.randn(3, 4, 17), torch.randn(3, 4, 17)
    assert alpha_beta_divergence(s, t, alpha=1, beta=0).item() == pytest.approx(forward_kl(s, t).item(), abs=1e-5)
    assert alpha_beta_divergence(s, t, alpha=0, beta=1).item() == pytest.approx(reverse_kl(s, t).item(), abs=1e-5)


def test_alpha_beta_leaves_out_entries_masked_on_either_side():
    t = torch.tensor([[0.0, float("-inf"), 1.0]])
    s = torch.tensor([[0.5, 0.2, float("-inf")]], requires_grad=True)
    loss = alpha_beta_divergence(s, t, alpha=-0.5, beta=1.0)  # a negative exponent of 0 would be infinite
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
