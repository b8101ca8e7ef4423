"""Forward KL against a teacher stored as its top-k logits (the teacher-output cache's `topk` form).

The tail is one bucket: with P = Σ_{v∈K} p_v the teacher's top-k mass and Q = Σ_{v∈K} q_v the student's,

    KL_K(p ‖ q) = Σ_{v∈K} p_v log(p_v / q_v) + (1 − P) log((1 − P) / (1 − Q)),

the exact KL between the two distributions coarsened to (top-k, rest). It equals the dense KL when k = V
(no tail) and never exceeds it (coarsening cannot increase a KL): a coarser objective than
`kdbench.losses.forward_kl`, which records mark `topk(k)` and the leaderboard keeps apart. log(1 − Q) is the
student's log-sum-exp over the tail minus its full log-sum-exp, so it stays stable when Q → 1. The mean is
over unmasked positions (0 when every position is masked); no gradient reaches the teacher.
"""

from __future__ import annotations

import math

import torch


def sparse_forward_kl(student_logits: torch.Tensor, topk_values: torch.Tensor, topk_indices: torch.Tensor,
                      teacher_lse: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0,
                      reduction: str = "mean") -> torch.Tensor:
    """Forward KL against a top-k teacher with the tail as one bucket (see the module docstring).

    Shapes: student_logits `(..., V)`; topk_values (the teacher's raw logits, any float dtype) and
    topk_indices `(..., k)`; teacher_lse `(...)` = logsumexp(teacher_logits / T) over the full
    vocabulary, at the same T.
    """
    from kdbench.losses._reduce import reduce_positions

    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_p = topk_values.detach().float() / temperature - teacher_lse.detach().float()[..., None]  # (..., k)
    p = log_p.exp()
    scaled = student_logits.float() / temperature
    lse_q = torch.logsumexp(scaled, dim=-1)
    log_q = scaled.gather(-1, topk_indices) - lse_q[..., None]
    head = (p * (log_p - log_q)).sum(-1)
    if topk_indices.shape[-1] >= scaled.shape[-1]:  # the top-k is the whole vocabulary: no tail
        return reduce_positions(head, mask, reduction)
    # rounding (fp16 values) can push P a hair over 1: the tail mass is then 0 and contributes 0·log 0 = 0
    tail_p = (1.0 - p.sum(-1)).clamp_min(0.0)
    in_topk = torch.zeros_like(scaled, dtype=torch.bool).scatter_(-1, topk_indices, True)
    log_tail_q = torch.logsumexp(scaled.masked_fill(in_topk, -math.inf), dim=-1) - lse_q  # finite: k < V
    positive = tail_p > 0
    log_tail_p = torch.where(positive, tail_p, torch.ones_like(tail_p)).log()
    tail = torch.where(positive, tail_p * (log_tail_p - log_tail_q), torch.zeros_like(tail_p))
    return reduce_positions(head + tail, mask, reduction)
