"""The chunked forward KL (forward_kl's mean, every method's fkl) equals the autograd formula in value and gradient."""

import math

import pytest
import torch

from kdbench.losses import forward_kl
from kdbench.losses._reduce import reduce_positions
from kdbench.losses.fused_kl import fused_forward_kl


def _formula(s, t, mask, temperature):
    """The autograd formula: forward_kl per position (its unreduced path), then the masked mean."""
    return reduce_positions(forward_kl(s, t, None, temperature, reduction="none"), mask, "mean")


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * 3, torch.randn(*shape, generator=g) * 3


@pytest.mark.parametrize("shape,chunk", [((2, 7, 50), 3), ((5, 11), 64), ((3, 4, 2), 1)])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_value_and_gradient_equal_the_autograd_reference(shape, chunk, temperature):
    s, t = _pair(shape)
    mask = torch.rand(shape[:-1], generator=torch.Generator().manual_seed(1)) > 0.3
    s1, s2 = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    ref = _formula(s1, t, mask, temperature)
    out = fused_forward_kl(s2, t, mask, temperature, chunk=chunk)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    (3.0 * ref).backward()
    (3.0 * out).backward()
    torch.testing.assert_close(s2.grad, s1.grad, rtol=1e-5, atol=1e-7)


def test_by_hand_two_classes():
    # p = softmax([0, ln 3]) = [1/4, 3/4], q = softmax([0, 0]) = [1/2, 1/2]
    t = torch.tensor([[0.0, math.log(3.0)]])
    s = torch.zeros(1, 2, requires_grad=True)
    kl = fused_forward_kl(s, t)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert kl.item() == pytest.approx(expected, abs=1e-7)
    kl.backward()
    torch.testing.assert_close(s.grad, torch.tensor([[0.5 - 0.25, 0.5 - 0.75]]))  # q − p


def test_zero_for_identical_inputs_and_masked_positions_do_not_count():
    s, t = _pair((4, 6, 30))
    assert fused_forward_kl(s, s.clone()).abs().item() < 1e-6
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[:, :3] = True
    t_changed = t.clone()
    t_changed[:, 3:] = float("nan")  # whatever a masked position holds
    s_changed = s.clone()
    s_changed[:, 3:] = 1e9
    torch.testing.assert_close(fused_forward_kl(s_changed, t_changed, mask), fused_forward_kl(s, t, mask))
    assert fused_forward_kl(s, t, torch.zeros(4, 6, dtype=torch.bool)).item() == 0.0


def test_no_gradient_reaches_the_teacher_and_zero_teacher_probabilities_are_finite():
    s, t = _pair((3, 10))
    t = t.clone().requires_grad_(True)
    t_inf = t.detach().clone()
    t_inf[:, :4] = -math.inf  # p = 0 on part of the vocabulary
    s = s.requires_grad_(True)
    out = fused_forward_kl(s, t_inf)
    ref = _formula(s, t_inf, None, 1.0)
    torch.testing.assert_close(out, ref)
    out.backward()
    assert torch.isfinite(s.grad).all()
    fused_forward_kl(s, t).backward()
    assert t.grad is None


def test_forward_kl_mean_is_the_chunked_path():
    s, t = _pair((3, 5, 40))
    s1, s2 = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    mask = torch.tensor([[1, 1, 0, 1, 0]] * 3).bool()
    out, ref = forward_kl(s1, t, mask, 2.0), _formula(s2, t, mask, 2.0)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    out.backward()
    ref.backward()
    torch.testing.assert_close(s1.grad, s2.grad, rtol=1e-5, atol=1e-7)
