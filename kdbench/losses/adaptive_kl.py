"""AKL, adaptive KL (Wu et al. 2024, "Rethinking Kullback-Leibler Divergence in Knowledge Distillation for
Large Language Models", arXiv 2404.02657): forward and reverse KL mixed per position by where the student
is wrong.

    H      = the smallest set of highest-probability teacher entries whose teacher mass reaches μ (the head)
    g_head = Σ_{v∈H} |p_v − q_v|,   g_tail = Σ_{v∉H} |p_v − q_v|
    AKL    = g_head/(g_head+g_tail) · KL(p ‖ q) + g_tail/(g_head+g_tail) · KL(q ‖ p)

Forward KL fits the head first and reverse KL the tail, so the mixture weights whichever half the student
gets more wrong (the paper's Eq. 6-8; μ = 0.5, METHODS.md §7).

Choices, as METHODS.md §7 asks them stated:
- The head is found in the teacher's sorted order and mapped back to vocabulary ids (a scatter), so it
  names the right entries of the unsorted distributions.
- "Reaches μ": an entry is in the head when the teacher mass *before* it is below μ, so the entry that
  crosses μ is in. The authors' code (`get_ratio`, jongwooko/distillm lineage) keeps the entries whose
  cumulative mass *including* themselves is ≤ μ, plus the first: with sorted p = [0.4, 0.3, 0.3] its
  head is {0} and this one's {0, 1}. Both agree whenever one entry crosses μ exactly.
- The weights are constants: computed from detached probabilities, as the authors' code does
  (`student_probs.detach()`), so the gradient is that of the weighted sum of the two KLs.
- Where p = q exactly (g_head + g_tail = 0) both KLs are 0; the weights are then ½ and ½, not 0/0.
"""

from __future__ import annotations

import torch

from kdbench.losses._reduce import reduce_positions
from kdbench.losses.divergences import kl_terms, log_probs


def head_mask(teacher_probs: torch.Tensor, mu: float) -> torch.Tensor:
    """Boolean `(..., V)`: the smallest set of highest-probability entries whose mass reaches `mu`."""
    if not 0.0 < mu <= 1.0:
        raise ValueError(f"AKL's head mass mu must be in (0, 1], got {mu}")
    sorted_p, order = teacher_probs.sort(dim=-1, descending=True)
    before = sorted_p.cumsum(-1) - sorted_p  # teacher mass of the entries ranked above each one
    return torch.zeros_like(teacher_probs, dtype=torch.bool).scatter(-1, order, before < mu)


def adaptive_kl(student_logits, teacher_logits, mask=None, temperature=1.0, mu=0.5, reduction="mean"):
    """AKL (Wu et al. 2024): head/tail-gap-weighted mix of KL(p ‖ q) and KL(q ‖ p), per position.

    Shapes: logits `(..., V)`, mask `(...)`. Returns a scalar (or `(...)` with reduction="none").
    """
    log_p = log_probs(teacher_logits.detach(), temperature)
    log_q = log_probs(student_logits, temperature)
    with torch.no_grad():
        p, q = log_p.exp(), log_q.exp()
        head = head_mask(p, mu)
        gap = (p - q).abs()
        g_head = torch.where(head, gap, torch.zeros((), dtype=gap.dtype, device=gap.device)).sum(-1)
        total = gap.sum(-1)
        w_head = torch.where(total > 0, g_head / total.clamp_min(torch.finfo(total.dtype).tiny),
                             torch.full((), 0.5, dtype=total.dtype, device=total.device))
    per_pos = w_head * kl_terms(log_p, log_q) + (1.0 - w_head) * kl_terms(log_q, log_p)
    return reduce_positions(per_pos, mask, reduction)
