"""Feature-alignment losses: hidden states and attention maps (TinyBERT/MiniLM templates).

Used by `fakd` (METHODS.md §3, recommended spec). Both are pure functions; the
learned projection W_m and the layer map live in the method, not here.
"""

from __future__ import annotations

import torch

from kdbench.losses._reduce import reduce_positions


def hidden_mse(student_hidden, teacher_hidden, mask=None, reduction="mean"):
    """Mean squared error between hidden states, averaged over the hidden width.

    per position: (1/H) Σ_h (s_h − t_h)²;  then the mean over unmasked positions.
    Shapes: hidden `(..., H)` (project the student to the teacher's width first),
    mask `(...)`. The teacher is detached. Zero for identical inputs.
    """
    if student_hidden.shape != teacher_hidden.shape:
        raise ValueError(
            f"hidden shapes differ: student {tuple(student_hidden.shape)} vs teacher {tuple(teacher_hidden.shape)};"
            " project the student to the teacher's width first"
        )
    diff = student_hidden.float() - teacher_hidden.detach().float()
    return reduce_positions(diff.pow(2).mean(-1), mask, reduction)


def group_heads(attn: torch.Tensor, heads: int) -> torch.Tensor:
    """Average `(B, h, T, T)` attention maps in consecutive groups of h/heads → `(B, heads, T, T)`."""
    h = attn.shape[1]
    if h == heads:
        return attn
    if h % heads:
        raise ValueError(f"cannot group {h} teacher heads into {heads} student heads: {h} is not a multiple of {heads}")
    return attn.unflatten(1, (heads, h // heads)).mean(2)


def attention_kl(student_attn, teacher_attn, mask=None, reduction="mean"):
    """KL(A_t ‖ A_s) between post-softmax attention rows, with teacher head grouping.

    per (head, query): Σ_key A_t log(A_t / A_s), with 0·log 0 = 0;
    then the mean over heads, then over unmasked query positions.
    When the teacher has more heads (h_t = g·h_s), each group of g consecutive
    teacher heads is averaged first (the average of distributions is a
    distribution). Padded keys have probability 0 in both maps; a causal mask is
    already inside the maps.
    Shapes: student `(B, h_s, T, T)`, teacher `(B, h_t, T, T)`, mask `(B, T)`
    over queries. Returns a scalar (or `(B, T)`). The teacher is detached.
    """
    a_s = student_attn.float()
    a_t = group_heads(teacher_attn.detach().float(), a_s.shape[1])
    if a_t.shape != a_s.shape:
        raise ValueError(f"attention shapes differ: student {tuple(a_s.shape)} vs teacher {tuple(a_t.shape)}")
    # Where A_t = 0 (padded keys, causal future) both logs read 1 instead, so the term is 0·0 and
    # autograd never sees log 0 (whose inf·0 would turn the student's gradient into NaN).
    support = a_t > 0
    one = torch.ones((), dtype=a_t.dtype, device=a_t.device)
    log_ratio = torch.where(support, a_t, one).log() - torch.where(support, a_s, one).log()
    per_query = (a_t * log_ratio).sum(-1).mean(1)  # (B, T)
    return reduce_positions(per_query, mask, reduction)
