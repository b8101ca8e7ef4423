"""Token-level divergences between a teacher distribution p and a student q.

All functions take logits of shape `(..., V)` (V classes or vocabulary entries)
and an optional boolean mask `(...)`; they return the mean over unmasked
positions (`reduction="mean"`) or the per-position values (`reduction="none"`).

- p = softmax(teacher_logits / T), q = softmax(student_logits / T), the same T
  for both (Hinton et al. 2015). The T² factor that keeps soft-target gradients
  on the scale of the hard-label gradients is *not* applied here: it belongs to
  the method that mixes the terms (see `kdbench.methods.kd`).
- Computation is in float32 from log-softmax, so values are exact KLs (not the
  cross-entropy form `−Σ p log q`, which differs by the teacher entropy and has
  the same gradient; METHODS.md §5 #6).
- The teacher is detached: no gradient ever reaches the teacher logits.
- Vocabulary entries with p = 0 (logit −inf) contribute 0 to `Σ p log(p/·)`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdbench.losses._reduce import reduce_positions
from kdbench.losses.fused_kl import fused_forward_kl


def log_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(logits / T), in float32 at least (float64 logits stay float64: the tests' exact limits)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return F.log_softmax(logits.to(dtype) / temperature, dim=-1)


def kl_terms(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """Σ_v a_v (log a_v − log b_v) over the last dim, with 0·log 0 = 0.

    The difference is zeroed *before* the product where a_v = 0, so that no
    −inf·0 reaches autograd (NaN gradients otherwise).
    """
    a = log_a.exp()
    diff = torch.where(a > 0, log_a - log_b, torch.zeros((), dtype=a.dtype, device=a.device))
    return (a * diff).sum(-1)


def _log_mixture(log_a: torch.Tensor, log_b: torch.Tensor, weight_a: float) -> torch.Tensor:
    """log(w·a + (1−w)·b), computed stably in log space."""
    if not 0.0 <= weight_a <= 1.0:
        raise ValueError(f"mixture weight must be in [0, 1], got {weight_a}")
    log_w = math.log(weight_a) if weight_a > 0 else -math.inf
    log_1mw = math.log1p(-weight_a) if weight_a < 1 else -math.inf
    a, b = log_a + log_w, log_b + log_1mw
    # Where both terms are −inf the mixture is 0; logaddexp's gradient there is NaN, so
    # evaluate it on zeros and select −inf instead (those entries carry no loss).
    support = torch.isfinite(a) | torch.isfinite(b)
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    mixed = torch.logaddexp(torch.where(support, a, zero), torch.where(support, b, zero))
    return torch.where(support, mixed, torch.full((), -math.inf, dtype=a.dtype, device=a.device))


def forward_kl(student_logits, teacher_logits, mask=None, temperature=1.0, reduction="mean"):
    """Forward KL, KL(p ‖ q) = Σ_v p_v log(p_v / q_v). Mean-seeking; Hinton et al. 2015.

    Shapes: logits `(..., V)`, mask `(...)`. Returns a scalar (or `(...)`).

    kdbench's one forward KL: the mean (what every method trains on) goes through the chunked path with
    its gradient written out (`kdbench.losses.fused_kl`: the same value and gradient as the formula below,
    to float rounding, at a third of its time on a 49,152-word vocabulary); `reduction="none"` (per
    position: RLKD's dynamic weighting, the diagnostics) is the formula itself. The cached top-k teacher's
    tail-bucket KL (`kdbench.losses.topk_kl.sparse_forward_kl`) is a coarser objective, not this one.
    """
    if reduction == "mean":
        return fused_forward_kl(student_logits, teacher_logits, mask, temperature)
    log_p = log_probs(teacher_logits.detach(), temperature)
    log_q = log_probs(student_logits, temperature)
    return reduce_positions(kl_terms(log_p, log_q), mask, reduction)


def reverse_kl(student_logits, teacher_logits, mask=None, temperature=1.0, reduction="mean"):
    """Reverse KL, KL(q ‖ p) = Σ_v q_v log(q_v / p_v). Mode-seeking; used by MiniLLM (Gu et al. 2024).

    Shapes: logits `(..., V)`, mask `(...)`.
    """
    log_p = log_probs(teacher_logits.detach(), temperature)
    log_q = log_probs(student_logits, temperature)
    return reduce_positions(kl_terms(log_q, log_p), mask, reduction)


def jsd(student_logits, teacher_logits, mask=None, temperature=1.0, beta=0.5, reduction="mean"):
    """Generalised Jensen–Shannon divergence JSD(β) (GKD, Agarwal et al. 2024).

    m = β·p + (1−β)·q;  JSD(β) = β·KL(p ‖ m) + (1−β)·KL(q ‖ m).
    β = 0.5 is the symmetric JSD that RLKD's code uses; DistiLLM's
    `js_distance(lam=0.9)` is β = 0.1. β ∈ [0, 1]; at β = 0 or 1 it is 0.
    Shapes: logits `(..., V)`, mask `(...)`.
    """
    log_p = log_probs(teacher_logits.detach(), temperature)
    log_q = log_probs(student_logits, temperature)
    log_m = _log_mixture(log_p, log_q, beta)
    per_pos = beta * kl_terms(log_p, log_m) + (1.0 - beta) * kl_terms(log_q, log_m)
    return reduce_positions(per_pos, mask, reduction)


def generalized_jsd(student_logits, teacher_logits, mask=None, temperature=1.0, beta=0.5, reduction="mean"):
    """GKD's generalised JSD as TRL computes it (`GKDTrainer.generalized_jsd_loss`, trl 1.16): `jsd(β)` for
    0 < β < 1, and at the ends the two KLs it interpolates between: β = 0 is KL(p ‖ q), β = 1 is KL(q ‖ p)
    (`jsd` itself is 0 there). The mean is per scored token, TRL's "batchmean" with labels.

    Shapes: logits `(..., V)`, mask `(...)`.
    """
    if beta == 0:
        return forward_kl(student_logits, teacher_logits, mask, temperature, reduction)
    if beta == 1:
        return reverse_kl(student_logits, teacher_logits, mask, temperature, reduction)
    return jsd(student_logits, teacher_logits, mask, temperature, beta, reduction)


def tvd(student_logits, teacher_logits, mask=None, temperature=1.0, reduction="mean"):
    """Total variation distance, ½ Σ_v |p_v − q_v|, in [0, 1].

    Shapes: logits `(..., V)`, mask `(...)`.
    """
    p = log_probs(teacher_logits.detach(), temperature).exp()
    q = log_probs(student_logits, temperature).exp()
    return reduce_positions(0.5 * (p - q).abs().sum(-1), mask, reduction)


def skew_kl(student_logits, teacher_logits, mask=None, temperature=1.0, alpha=0.1, reduction="mean"):
    """Skew KL, SKL(α) = KL(p ‖ α·p + (1−α)·q) (DistiLLM, Ko et al. 2024; α = 0.1).

    α = 0 gives the forward KL; α = 1 gives 0. Shapes: logits `(..., V)`, mask `(...)`.
    """
    log_p = log_probs(teacher_logits.detach(), temperature)
    log_q = log_probs(student_logits, temperature)
    return reduce_positions(kl_terms(log_p, _log_mixture(log_p, log_q, alpha)), mask, reduction)


def skew_reverse_kl(student_logits, teacher_logits, mask=None, temperature=1.0, alpha=0.1, reduction="mean"):
    """Skew reverse KL, SRKL(α) = KL(q ‖ (1−α)·p + α·q) (DistiLLM; α = 0.1).

    α = 0 gives the reverse KL; α = 1 gives 0. Shapes: logits `(..., V)`, mask `(...)`.
    """
    log_p = log_probs(teacher_logits.detach(), temperature)
    log_q = log_probs(student_logits, temperature)
    return reduce_positions(kl_terms(log_q, _log_mixture(log_p, log_q, 1.0 - alpha)), mask, reduction)
