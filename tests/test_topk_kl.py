"""The top-k teacher's forward KL (tail as one bucket) against the dense forward KL and by hand."""

import math

import pytest
import torch

from kdbench.losses import forward_kl
from kdbench.losses.topk_kl import sparse_forward_kl

B, L, V = 3, 7, 50


def inputs(requires_grad=True):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(B, L, V, generator=g, dtype=torch.float64).requires_grad_(requires_grad)
    t = torch.randn(B, L, V, generator=g, dtype=torch.float64) * 2
    mask = torch.rand(B, L, generator=g) > 0.3
    return s, t, mask


def _topk(t, k, temperature=1.0):
    values, indices = t.topk(k, dim=-1)
    return values, indices, torch.logsumexp(t / temperature, dim=-1)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sparse_kl_with_the_whole_vocabulary_equals_dense(temperature):
    s, t, mask = inputs()
    dense = forward_kl(s, t, mask, temperature=temperature)
    (g_dense,) = torch.autograd.grad(dense, s)
    s2 = s.detach().clone().requires_grad_(True)
    sparse = sparse_forward_kl(s2, *_topk(t, V, temperature), mask=mask, temperature=temperature)
    sparse.backward()
    assert sparse.item() == pytest.approx(dense.item(), abs=1e-5)
    assert torch.allclose(s2.grad, g_dense, atol=1e-5)


def test_sparse_kl_tail_bucket_by_hand():
    # V = 3, k = 1. p = softmax(0, log 2, log 1)... use direct probabilities: teacher p = (0.5, 0.3, 0.2),
    # student q = (0.25, 0.25, 0.5); top-1 = {0}: KL = 0.5 log(0.5/0.25) + 0.5 log(0.5/0.75)
    t = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64).log()
    s = torch.tensor([[0.25, 0.25, 0.5]], dtype=torch.float64).log()
    value = sparse_forward_kl(s, *_topk(t, 1))
    assert value.item() == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75), abs=1e-6)  # float32 inside


def test_sparse_kl_never_exceeds_dense_and_is_zero_for_identical():
    s, t, mask = inputs(requires_grad=False)
    dense = forward_kl(s, t, mask)
    for k in (1, 5, 20):
        assert sparse_forward_kl(s, *_topk(t, k), mask=mask).item() <= dense.item() + 1e-6
        assert abs(sparse_forward_kl(t, *_topk(t, k), mask=mask).item()) < 1e-6


def test_sparse_kl_from_fp16_cached_values_stays_close():
    s, t, mask = inputs(requires_grad=False)
    values, indices, lse = _topk(t.float(), 20)
    exact = sparse_forward_kl(s.float(), values, indices, lse, mask)
    cached = sparse_forward_kl(s.float(), values.half(), indices, lse, mask)
    assert torch.isfinite(cached) and abs(cached.item() - exact.item()) < 1e-2
