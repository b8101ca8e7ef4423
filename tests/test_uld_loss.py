"""ULD's sorted-probability L1 (kdbench.losses.uld): hand cases, invariances, and a per-row loop reference."""
import math

import pytest
import torch

from kdbench.losses.uld import uld_loss


def _mask(rows, width):
    m = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, (start, n) in enumerate(rows):
        m[i, start:start + n] = True
    return m


def _loop_reference(s, t, ms, mt):
    """The authors' procedure row by row: softmax the answer span, sort, zero-pad the vocabulary, L1 per position,
    mean over min(n_s, n_t) positions, then mean over rows."""
    losses = []
    for i in range(s.shape[0]):
        qs = torch.softmax(s[i][ms[i]], -1).sort(-1, descending=True).values
        ps = torch.softmax(t[i][mt[i]], -1).sort(-1, descending=True).values
        n = min(len(qs), len(ps))
        if n == 0:
            continue
        v = max(qs.shape[-1], ps.shape[-1])
        qs = torch.nn.functional.pad(qs[:n], (0, v - qs.shape[-1]))
        ps = torch.nn.functional.pad(ps[:n], (0, v - ps.shape[-1]))
        losses.append((qs - ps).abs().sum(-1).mean())
    return torch.stack(losses).mean()


def test_a_hand_case_with_different_vocabularies_and_lengths():
    # row 0: student q = (0.25, 0.75) → (0.75, 0.25); teacher p = (0.5, 0.3, 0.2): |0.25| + |−0.05| + 0.2 = 0.5
    # second position: q = (0.5, 0.5), p = (1, 0, 0): 0.5 + 0.5 + 0 = 1.0; a third student position has no partner
    s = torch.log(torch.tensor([[[0.25, 0.75], [0.5, 0.5], [0.9, 0.1]]]))
    t = torch.log(torch.tensor([[[0.2, 0.5, 0.3], [1.0, 1e-30, 1e-30], [0.3, 0.3, 0.4]]]))
    ms, mt = _mask([(0, 3)], 3), _mask([(1, 2)], 3)  # the teacher's response starts one position later
    t_shifted = torch.cat([t[:, 2:], t[:, :2]], 1)  # its positions 1, 2 hold the two distributions above
    assert uld_loss(s, t_shifted, ms, mt).item() == pytest.approx((0.5 + 1.0) / 2, abs=1e-6)


def test_rows_weigh_equally_whatever_their_length():
    s = torch.log(torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[1.0, 1e-30], [0.5, 0.5]]]))
    t = torch.log(torch.tensor([[[1.0, 1e-30], [1.0, 1e-30]], [[1.0, 1e-30], [1.0, 1e-30]]]))
    ms, mt = _mask([(0, 2), (0, 1)], 2), _mask([(0, 2), (0, 2)], 2)
    # row 0: two positions of L1 1.0; row 1: one position of 0 → (1 + 0) / 2, not the token mean 2/3
    assert uld_loss(s, t, ms, mt).item() == pytest.approx(0.5, abs=1e-6)
    assert uld_loss(s, t, ms, mt, reduction="none").tolist() == pytest.approx([1.0, 0.0], abs=1e-6)


def test_identical_distributions_give_zero_even_across_a_permuted_or_padded_vocabulary():
    torch.manual_seed(0)
    s = torch.randn(3, 5, 7)
    m = torch.ones(3, 5, dtype=torch.bool)
    assert uld_loss(s, s.clone(), m, m).item() == pytest.approx(0.0, abs=1e-6)
    assert uld_loss(s, s[..., torch.randperm(7)], m, m).item() == pytest.approx(0.0, abs=1e-6)
    padded = torch.cat([s, torch.full((3, 5, 4), -math.inf)], -1)  # 4 more words the teacher never uses
    assert uld_loss(s, padded, m, m).item() == pytest.approx(0.0, abs=1e-6)


def test_invariant_to_permuting_either_vocabulary_and_equal_to_the_loop_reference():
    torch.manual_seed(1)
    s, t = torch.randn(4, 6, 9), torch.randn(4, 8, 13) * 2
    ms, mt = _mask([(1, 4), (0, 6), (2, 1), (3, 0)], 6), _mask([(2, 5), (1, 3), (0, 8), (4, 2)], 8)
    loss = uld_loss(s, t, ms, mt)
    assert loss.item() == pytest.approx(_loop_reference(s, t, ms, mt).item(), abs=1e-6)
    assert uld_loss(s[..., torch.randperm(9)], t[..., torch.randperm(13)], ms, mt).item() == pytest.approx(
        loss.item(), abs=1e-6)


def test_temperatures_the_gradient_and_an_empty_batch():
    torch.manual_seed(2)
    s, t = torch.randn(2, 4, 5, requires_grad=True), torch.randn(2, 4, 6, requires_grad=True)
    m = torch.ones(2, 4, dtype=torch.bool)
    loss = uld_loss(s, t, m, m, student_temperature=2.0, teacher_temperature=0.5)
    assert loss.item() == pytest.approx(_loop_reference(s.detach() / 2, t.detach() / 0.5, m, m).item(), abs=1e-6)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0 and t.grad is None  # the teacher is a constant
    empty = uld_loss(s, t, torch.zeros_like(m), m)
    assert empty.item() == 0.0 and empty.requires_grad
