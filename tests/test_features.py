"""Hidden-state MSE and attention KL, by hand and by invariant."""

import math

import pytest
import torch

from kdbench.losses import attention_kl, group_heads, hidden_mse


def test_hidden_mse_hand_case():
    # ((1 − 0)² + (2 − 0)²)/2 = 2.5 at position 0; position 1 identical → 0; mean 1.25
    s = torch.tensor([[[1.0, 2.0], [3.0, 3.0]]])
    t = torch.tensor([[[0.0, 0.0], [3.0, 3.0]]])
    assert hidden_mse(s, t).item() == pytest.approx(1.25)
    assert hidden_mse(s, t, torch.tensor([[True, False]])).item() == pytest.approx(2.5)


def test_hidden_mse_zero_identical_no_teacher_grad_mask_independent():
    s = torch.randn(2, 4, 8, requires_grad=True)
    t = torch.randn(2, 4, 8, requires_grad=True)
    assert hidden_mse(s, s.detach().clone()).item() == 0.0
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    hidden_mse(s, t, mask).backward()
    assert t.grad is None
    t2 = t.detach().clone()
    t2[~mask] = 1e6
    assert hidden_mse(s, t2, mask).item() == pytest.approx(hidden_mse(s, t, mask).item())


def test_attention_kl_hand_case():
    # KL([0.5, 0.5] ‖ [0.25, 0.75]) = 0.5·ln 2 + 0.5·ln(2/3) = 0.143841
    t = torch.tensor([0.5, 0.5]).view(1, 1, 1, 2).expand(1, 1, 2, 2)
    s = torch.tensor([0.25, 0.75]).view(1, 1, 1, 2).expand(1, 1, 2, 2)
    assert attention_kl(s, t).item() == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-6)


def test_attention_kl_groups_teacher_heads():
    # Two teacher heads [1, 0] and [0, 1] average to [0.5, 0.5], identical to the one student head.
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    s = torch.tensor([0.5, 0.5]).view(1, 1, 1, 2)
    assert group_heads(t, 1).view(-1).tolist() == [0.5, 0.5]
    assert attention_kl(s, t).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="multiple"):
        attention_kl(torch.rand(1, 2, 1, 2), torch.rand(1, 3, 1, 2))


def test_attention_kl_padded_keys_and_masked_queries():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    def maps(heads):
        scores = torch.randn(1, heads, 4, 4).masked_fill(~mask[:, None, None, :], float("-inf"))
        return scores.softmax(-1)
    s, t = maps(2).requires_grad_(), maps(4)
    loss = attention_kl(s, t, mask)
    assert torch.isfinite(loss)
    assert attention_kl(t[:, ::2], t[:, ::2], mask).item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad[0, :, 3].abs().sum() == 0  # masked query row: no gradient
