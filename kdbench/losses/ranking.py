"""Differentiable soft ranks and the RLKD ranking loss (pure PyTorch, no torchsort).

Soft rank (Blondel et al. 2020, "Fast Differentiable Sorting and Ranking", l2
regularisation): the soft rank of x with strength ε is the Euclidean
projection of x/ε onto the permutahedron of ρ = (n, n−1, …, 1),

    r(x) = P(x/ε) = s − v,   s = sort_desc(x/ε),
    v = argmin_{v₁ ≥ v₂ ≥ … ≥ vₙ} ½‖v − (s − ρ)‖²   (isotonic regression),

un-permuted back to the input order. Ranks are ascending (1 = smallest), as in
torchsort. ε → 0 gives the hard ranks; ε → ∞ gives (n+1)/2 everywhere.

The isotonic step uses the closed form of pool-adjacent-violators,
v_i = min_{j≤i} max_{l≥i} mean(y_j..y_l), evaluated for all (j, l) at once from
cumulative sums. That is O(n²) per row instead of PAV's O(n), but it is a few
batched tensor ops instead of a Python loop over rows, and n = 2k ≤ ~60 here.
Autograd through the selected block means gives PAV's block-averaging Jacobian.
"""

from __future__ import annotations

import torch

from kdbench.losses._reduce import reduce_positions

UNIONS = ("concat", "exact", "authors")


def _isotonic_nonincreasing(y: torch.Tensor) -> torch.Tensor:
    """argmin_v ½‖v − y‖² subject to v₁ ≥ … ≥ vₙ, over the last dim of `y` `(..., n)`."""
    n = y.shape[-1]
    zero = torch.zeros_like(y[..., :1])
    csum = torch.cat([zero, y.cumsum(-1)], dim=-1)  # (..., n+1)
    j = torch.arange(n, device=y.device)
    length = (j[None, :] - j[:, None] + 1).to(y.dtype)  # [j, l] -> l − j + 1
    block_mean = (csum[..., None, 1:] - csum[..., :-1, None]) / length.clamp_min(1)  # (..., j, l)
    # max over l ≥ i: reverse cumulative max along l.
    max_right = block_mean.flip(-1).cummax(-1).values.flip(-1)  # (..., j, i)
    upper = j[:, None] <= j[None, :]  # j ≤ i
    max_right = max_right.masked_fill(~upper, float("inf"))
    return max_right.min(dim=-2).values  # min over j ≤ i


def soft_rank(x: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """l2-regularised soft ranks of `x` `(..., n)` along the last dim; 1 = smallest.

    Differentiable almost everywhere; computed in float64 internally and
    returned in x's floating dtype. Blondel et al. 2020 (ICML).
    """
    if not strength > 0:
        raise ValueError(f"soft-rank strength must be > 0, got {strength}")
    n = x.shape[-1]
    z = x.double() / strength
    sorted_z, perm = z.sort(dim=-1, descending=True)
    rho = torch.arange(n, 0, -1, device=x.device, dtype=z.dtype)
    primal = sorted_z - _isotonic_nonincreasing(sorted_z - rho)
    ranks = torch.zeros_like(primal).scatter(-1, perm, primal)
    return ranks.to(x.dtype if x.is_floating_point() else torch.float32)


def _first_occurrence(idx: torch.Tensor) -> torch.Tensor:
    """Boolean `(..., m)`: true where idx[..., i] does not appear earlier in its row."""
    m = idx.shape[-1]
    same = idx[..., :, None] == idx[..., None, :]
    earlier = torch.ones(m, m, dtype=torch.bool, device=idx.device).tril(-1)
    return ~(same & earlier).any(-1)


def _authors_columns(idx: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Boolean `(..., 2k)`: the columns the authors' `torch.unique(cat(topk_t, topk_s), dim=-1)` keeps.

    Their rows are the scored positions of one micro-batch of one example (`logits[mask].view(-1, V)`), and
    unique over the last dim drops a column only where it equals an earlier column in *every* row. Here a
    sequence is the second-last dim of a `(..., S, V)` input (its scored positions, per the mask); a `(N, V)`
    input is N sequences of one position (the causal GLUE form: one answer position per example), where the
    rule is the exact set union.
    """
    rows = idx if idx.dim() >= 3 else idx[:, None, :]  # (..., S, 2k)
    same = rows[..., :, None] == rows[..., None, :]  # (..., S, 2k, 2k)
    if mask is not None:
        scored = (mask if idx.dim() >= 3 else mask[:, None]).bool()
        same = same | ~scored[..., None, None]  # an unscored position agrees with everything
    everywhere = same.all(dim=-3)  # (..., 2k, 2k): equal in every row of the sequence
    m = idx.shape[-1]
    earlier = torch.ones(m, m, dtype=torch.bool, device=idx.device).tril(-1)
    keep = ~(everywhere & earlier).any(-1)  # (..., 2k)
    return keep[..., None, :].expand_as(rows).reshape(idx.shape)


def _spearman_from_ranks(r_a: torch.Tensor, r_b: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Pearson correlation of two rank rows (centre, L2-normalise, dot) over valid entries."""
    if valid is None:
        valid = torch.ones_like(r_a, dtype=torch.bool)
    w = valid.to(r_a.dtype)
    count = w.sum(-1, keepdim=True).clamp_min(1)
    a = (r_a - (r_a * w).sum(-1, keepdim=True) / count) * w
    b = (r_b - (r_b * w).sum(-1, keepdim=True) / count) * w
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (a * b).sum(-1)


def _push_invalid_to_bottom(values: torch.Tensor, valid: torch.Tensor, strength: float) -> torch.Tensor:
    """Replace invalid entries by a constant far below every valid one.

    The gap (value range + n + 1, in units of the strength) guarantees that no
    isotonic block pools a valid entry with an invalid one, so the valid
    entries keep exactly the soft ranks they would have on their own, shifted
    by the number of invalid entries; centring in the Spearman step removes
    that shift.
    """
    n = values.shape[-1]
    big = torch.finfo(values.dtype).max
    lo = values.masked_fill(~valid, big).min(-1, keepdim=True).values
    hi = values.masked_fill(~valid, -big).max(-1, keepdim=True).values
    fill = (lo - (hi - lo) - strength * (n + 1)).detach()
    return torch.where(valid, values, fill)


def rank_loss(student_logits, teacher_logits, mask=None, k=5, union="concat", strength=1.0, reduction="mean"):
    """RLKD ranking loss (Peng & Zhang, COLING 2025, Eq. 1): 1 − soft Spearman on the top-k peaks.

    Per position, U = the teacher's top-k indices together with the student's
    top-k indices; the teacher's and the student's raw logits at U are soft-ranked
    (`soft_rank`, l2, `strength`) and their Spearman correlation ρ is
    Cov(R_p, R_q)/(σ_Rp σ_Rq). The loss is 1 − ρ, averaged over unmasked positions
    (range [0, 2]).

    - `union="concat"` (default): the 2k indices are concatenated, duplicates
      included; what the authors' `torch.unique(dim=-1)` keeps on a long response.
    - `union="exact"` uses the set union of the paper: duplicates are dropped per
      position, and the Spearman is computed over the |U| distinct entries only.
    - `union="authors"` is exactly what the authors' `torch.unique(dim=-1)` does: a column
      is dropped where it repeats an earlier one at every scored position of its
      sequence (`_authors_columns`). With one scored position (a one-token response,
      or the causal GLUE form's answer) that is the exact union; over a long response
      it keeps nearly every duplicate, as `concat` does. The paper presets use it.

    Soft ranks of raw logits, as in the authors' code: there is no temperature.
    Scaling both logits by 1/T is the same as multiplying `strength` by T.
    Shifting logits by a constant changes nothing. Shapes: logits `(..., V)`,
    mask `(...)`; requires 1 ≤ k ≤ V. The teacher is detached.
    """
    if union not in UNIONS:
        raise ValueError(f"union must be one of {UNIONS}, got {union!r}")
    vocab = student_logits.shape[-1]
    if teacher_logits.shape[-1] != vocab:
        raise ValueError(f"teacher has {teacher_logits.shape[-1]} classes, student {vocab}")
    if not 1 <= k <= vocab:
        raise ValueError(f"k must be in [1, {vocab}] (the number of classes), got {k}")
    teacher = teacher_logits.detach().float()
    student = student_logits.float()
    idx = torch.cat([teacher.topk(k, dim=-1).indices, student.detach().topk(k, dim=-1).indices], dim=-1)
    t_vals, s_vals = teacher.gather(-1, idx), student.gather(-1, idx)
    valid = None
    if union != "concat":
        valid = _first_occurrence(idx) if union == "exact" else _authors_columns(idx, mask)
        t_vals = _push_invalid_to_bottom(t_vals, valid, strength)
        s_vals = _push_invalid_to_bottom(s_vals, valid, strength)
    rho = _spearman_from_ranks(soft_rank(t_vals, strength), soft_rank(s_vals, strength), valid)
    return reduce_positions(1.0 - rho, mask, reduction)


def topk_overlap(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int) -> torch.Tensor:
    """|top-k(p) ∩ top-k(q)| / k per position `(...)`: the weight of RLKD's dynamic variant."""
    t_idx = teacher_logits.detach().topk(k, dim=-1).indices
    s_idx = student_logits.detach().topk(k, dim=-1).indices
    return (t_idx[..., :, None] == s_idx[..., None, :]).any(-1).float().mean(-1)
