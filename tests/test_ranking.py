"""Soft rank (pure-PyTorch Blondel et al. 2020) and the RLKD rank loss, against hand-worked cases."""


import pytest
import torch

from kdbench.losses import rank_loss, soft_rank, topk_overlap
from kdbench.losses.ranking import _isotonic_nonincreasing


def pav_reference(y):
    """Textbook pool-adjacent-violators for a non-increasing fit (an independent implementation)."""
    blocks = []  # [sum, count]
    for v in y:
        blocks.append([v, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    return [s / c for s, c in blocks for _ in range(c)]


def test_soft_rank_full_pooling_hand_case():
    # x = (0.2, 0.0, 0.5), ε = 1: s = sort_desc = (0.5, 0.2, 0.0), ρ = (3, 2, 1),
    # y = s − ρ = (−2.5, −1.8, −1.0): every pair violates, one block of mean −5.3/3 = −1.7667,
    # primal = s + 1.7667 = (2.2667, 1.9667, 1.7667) → back in input order:
    assert soft_rank(torch.tensor([0.2, 0.0, 0.5])).tolist() == pytest.approx([1.966667, 1.766667, 2.266667], abs=1e-5)


def test_soft_rank_partial_pooling_hand_case():
    # x = (0, 2.0, 1.8): s = (2.0, 1.8, 0), y = (−1.0, −0.2, −1.0): the first two pool to −0.6,
    # v = (−0.6, −0.6, −1.0), primal = (2.6, 2.4, 1.0) → input order (1.0, 2.6, 2.4).
    assert soft_rank(torch.tensor([0.0, 2.0, 1.8])).tolist() == pytest.approx([1.0, 2.6, 2.4], abs=1e-5)


def test_soft_rank_small_strength_gives_hard_ranks():
    x = torch.tensor([[3.0, -1.0, 2.0, 0.5]])
    assert soft_rank(x, strength=1e-3).tolist() == [[4.0, 1.0, 3.0, 2.0]]


def test_soft_rank_large_strength_gives_mean_rank():
    x = torch.randn(2, 5)
    assert torch.allclose(soft_rank(x, strength=1e6), torch.full((2, 5), 3.0), atol=1e-4)


def test_soft_rank_is_permutation_equivariant_and_sums_to_triangle_number():
    torch.manual_seed(0)
    x = torch.randn(6)
    perm = torch.randperm(6)
    assert torch.allclose(soft_rank(x)[perm], soft_rank(x[perm]), atol=1e-6)
    assert soft_rank(x).sum().item() == pytest.approx(21.0, abs=1e-5)


def test_isotonic_step_matches_reference_pav_on_random_rows():
    torch.manual_seed(1)
    y = torch.randn(200, 9).double() * 3
    got = _isotonic_nonincreasing(y)
    for row, fit in zip(y.tolist(), got.tolist()):
        assert fit == pytest.approx(pav_reference(row), abs=1e-9)


def test_soft_rank_gradients_are_finite_and_match_finite_differences():
    x = torch.tensor([0.3, -0.2, 0.25, 1.0], dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    (soft_rank(x) * weights).sum().backward()
    assert torch.isfinite(x.grad).all()
    eps = 1e-6
    for i in range(4):
        bump = torch.zeros(4, dtype=torch.float64)
        bump[i] = eps
        num = ((soft_rank(x.detach() + bump) - soft_rank(x.detach() - bump)) * weights).sum() / (2 * eps)
        assert x.grad[i].item() == pytest.approx(num.item(), abs=1e-5)


# Rank-loss hand case: V = 3, k = 2; teacher logits (0, 2.0, 1.8), student (0.2, 0.0, 0.5).
# Teacher top-2 = [1, 2], student top-2 = [2, 0]; concatenated indices [1, 2, 2, 0].
T3 = torch.tensor([[0.0, 2.0, 1.8]])
S3 = torch.tensor([[0.2, 0.0, 0.5]])


def test_rank_loss_exact_union_hand_case():
    # U = {1, 2, 0}: teacher values (2.0, 1.8, 0.0) → soft ranks (2.6, 2.4, 1.0) (partial-pool case);
    # student values (0.0, 0.5, 0.2) → (1.7667, 2.2667, 1.9667) (full-pool case).
    # Centred: (0.6, 0.4, −1.0) · (−0.2333, 0.2667, −0.0333) = −0.14 + 0.10667 + 0.03333 = 0 → ρ = 0, loss 1.
    assert rank_loss(S3, T3, k=2, union="exact").item() == pytest.approx(1.0, abs=1e-5)


def test_rank_loss_concat_union_hand_case():
    # Duplicates kept: teacher (2.0, 1.8, 1.8, 0.0): y = (−2, −1.2, −0.2, −1.0) pools to −1.1,
    # ranks (3.1, 2.9, 2.9, 1.1), centred (0.6, 0.4, 0.4, −1.4), norm √2.64.
    # Student (0.0, 0.5, 0.5, 0.2): sorted (0.5, 0.5, 0.2, 0) − (4, 3, 2, 1) pools to −2.2,
    # ranks (2.2, 2.7, 2.7, 2.4), centred (−0.3, 0.2, 0.2, −0.1), norm √0.18.
    # dot = −0.18 + 0.08 + 0.08 + 0.14 = 0.12; ρ = 0.12/(√2.64·√0.18) = 0.174078; loss = 0.825922.
    assert rank_loss(S3, T3, k=2, union="concat").item() == pytest.approx(0.825922, abs=1e-5)


@pytest.mark.parametrize("union", ["concat", "exact", "authors"])
def test_rank_loss_is_zero_for_identical_logits(union):
    logits = torch.randn(4, 3, 50)
    assert rank_loss(logits, logits.clone(), k=5, union=union).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("union", ["concat", "exact", "authors"])
def test_rank_loss_ignores_masked_positions_and_teacher_gradient(union):
    torch.manual_seed(0)
    s = torch.randn(2, 5, 30, requires_grad=True)
    t = torch.randn(2, 5, 30, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 0, 1, 0]], dtype=torch.bool)
    loss = rank_loss(s, t, mask, k=4, union=union)
    loss.backward()
    assert t.grad is None and torch.isfinite(s.grad).all()
    assert s.grad[~mask].abs().sum() == 0  # masked positions get no gradient either
    s2 = s.detach().clone()
    s2[~mask] = torch.randn_like(s2[~mask]) * 100
    assert rank_loss(s2, t.detach(), mask, k=4, union=union).item() == pytest.approx(loss.item(), abs=1e-5)


def test_rank_loss_temperature_is_the_strength():
    # Documented: no temperature; scaling both logits by 1/T equals strength·T. Shifts change nothing.
    s, t = torch.randn(3, 20), torch.randn(3, 20)
    assert rank_loss(s / 3, t / 3, k=5).item() == pytest.approx(rank_loss(s, t, k=5, strength=3.0).item(), abs=1e-5)
    assert rank_loss(s + 7, t - 2, k=5).item() == pytest.approx(rank_loss(s, t, k=5).item(), abs=1e-5)


def test_rank_loss_exact_union_equals_ranking_the_distinct_entries_alone():
    torch.manual_seed(3)
    s, t = torch.randn(1, 12), torch.randn(1, 12)
    k = 4
    idx = torch.cat([t.topk(k).indices, s.topk(k).indices], -1)[0].tolist()
    union = list(dict.fromkeys(idx))  # first occurrences, same order
    r_t, r_s = soft_rank(t[0, union]), soft_rank(s[0, union])
    r_t, r_s = r_t - r_t.mean(), r_s - r_s.mean()
    rho = (r_t @ r_s) / (r_t.norm() * r_s.norm())
    assert rank_loss(s, t, k=k, union="exact").item() == pytest.approx(1 - rho.item(), abs=1e-5)


def test_rank_loss_refuses_k_outside_vocabulary():
    with pytest.raises(ValueError, match="k must be"):
        rank_loss(torch.randn(2, 3), torch.randn(2, 3), k=4)


def test_topk_overlap_counts_shared_indices():
    t = torch.tensor([[5.0, 4.0, 3.0, 0.0]])  # top-2 {0, 1}
    s = torch.tensor([[5.0, 0.0, 4.0, 3.0]])  # top-2 {0, 2}
    assert topk_overlap(s, t, 2).tolist() == [0.5]


def _authors_rank_loss(student, teacher, k):
    """The authors' `1 − topk_spearman_loss` (Pty72/RLKD sft/kd_sft.py) on one example's scored rows `(N, V)`,
    with kdbench's soft rank in place of torchsort's."""
    idx = torch.unique(torch.cat([teacher.topk(k, -1).indices, student.topk(k, -1).indices], -1), dim=-1)
    ranks = [soft_rank(x.gather(-1, idx)) for x in (teacher, student)]
    centred = [(r - r.mean(1, keepdim=True)) / (r - r.mean(1, keepdim=True)).norm(dim=1, keepdim=True) for r in ranks]
    return 1 - (centred[0] * centred[1]).sum(1).mean()


@pytest.mark.parametrize("positions", [1, 2, 6])
def test_rank_loss_authors_union_is_their_unique_over_one_examples_rows(positions):
    torch.manual_seed(positions)
    t = torch.randn(1, 8, 12)
    s = t + 0.3 * torch.randn(1, 8, 12)  # a student near the teacher: shared top entries, so duplicates occur
    s[0, :, 0] = t[0, :, 0] = 9.0  # the top-1 of both at every position: a column equal in every row
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, 1:1 + positions] = True
    ours = rank_loss(s, t, mask, k=3, union="authors").item()
    assert ours == pytest.approx(_authors_rank_loss(s[mask], t[mask], 3).item(), abs=1e-5)
    if positions == 1:  # one row: their unique is the exact set union
        assert ours == pytest.approx(rank_loss(s, t, mask, k=3, union="exact").item(), abs=1e-6)


def test_rank_loss_authors_union_keeps_a_duplicate_that_is_not_one_in_every_row():
    t = torch.tensor([[[5.0, 4.0, 3.0, 0.0, 0.0], [5.0, 0.0, 0.0, 4.0, 3.0]]])
    s = torch.tensor([[[5.0, 4.0, 3.0, 0.0, 0.0], [0.0, 5.0, 4.0, 3.0, 0.0]]])
    from kdbench.losses.ranking import _authors_columns
    idx = torch.cat([t.topk(2, -1).indices, s.topk(2, -1).indices], -1)  # row 0: [0,1,0,1]; row 1: [0,3,1,2]
    assert _authors_columns(idx, None).tolist() == [[[True, True, True, True]] * 2]
    assert _authors_columns(idx[:, :1], None).tolist() == [[[True, True, False, False]]]
    assert _authors_columns(idx[0, :, :], None).tolist() == [[True, True, False, False], [True, True, True, True]]
