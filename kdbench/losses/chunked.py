"""Memory-bounded token-level KD losses: computed over chunks of positions, gradients formed per chunk.

Language-model KD holds (tokens × vocabulary) tensors: at 8,192 tokens and V = 49,152 one fp32 copy
is 1.6 GB, and a naive divergence keeps several (log-softmaxes, probabilities, products) alive for
backward. Here no (tokens × V) intermediate outlives its chunk:

- `chunked_divergence(fn, s, t, mask, chunk)`: any per-position divergence of `kdbench.losses`
  (called with `reduction="none"`), and `rank_loss` (k, union and strength passed through). The forward pass runs each chunk under autograd, takes the
  gradient with respect to that chunk's student logits at once, and stores it; backward only scales
  the stored gradient. Extra memory: one gradient the size of the student logits (which backward
  needs anyway) plus one chunk's temporaries.
- `fused_linear_divergence(fn, hidden, weight, t, mask, chunk)`: the "fused linear" form. The
  student's logits `hidden @ weight.T` are formed chunk by chunk from the final hidden states and the
  LM head and never exist whole; gradients for `hidden` and `weight` are accumulated per chunk.
- `sparse_forward_kl(s, topk_values, topk_indices, teacher_lse, mask, T)`: forward KL against a
  teacher stored as its top-k logits and log-sum-exp (the teacher-output cache). The tail is one
  bucket: with P = Σ_{v∈K} p_v the teacher's top-k mass and Q = Σ_{v∈K} q_v the student's,
      KL_K(p ‖ q) = Σ_{v∈K} p_v log(p_v / q_v) + (1 − P) log((1 − P) / (1 − Q)),
  the exact KL between the two distributions coarsened to (top-k, rest). It equals the dense KL
  when k = V (no tail) and never exceeds it (coarsening cannot increase a KL). log(1 − Q) is the
  student's log-sum-exp over the tail minus its full log-sum-exp, so it stays stable when Q → 1.

All return the mean over unmasked positions (0 when every position is masked), match the unchunked
reference to float precision (tests: 1e-5), and never pass a gradient to the teacher.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

Divergence = Callable[..., torch.Tensor]


def _flat(x: torch.Tensor, last: bool = True) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1]) if last else x.reshape(-1)


def _flat_mask(mask: torch.Tensor | None, n: int, device) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool, device=device) if mask is None else mask.reshape(-1).bool()


class _ChunkedDivergence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, student, teacher, mask, fn, chunk, kwargs):
        s, t = _flat(student), _flat(teacher.detach())
        m = _flat_mask(mask, s.shape[0], s.device)
        count = m.sum().clamp_min(1).to(torch.float32)
        grad = torch.zeros_like(s) if student.requires_grad else None
        total = torch.zeros((), dtype=torch.float32, device=s.device)
        for start in range(0, s.shape[0], chunk):
            part = slice(start, start + chunk)
            if not m[part].any():
                continue
            with torch.enable_grad():
                piece = s[part].detach().requires_grad_(grad is not None)
                values = fn(piece, t[part], mask=m[part], reduction="none", **kwargs).sum()
                if grad is not None:
                    (g,) = torch.autograd.grad(values, piece)
                    grad[part] = g
            total += values.detach()
        if grad is not None:
            ctx.save_for_backward((grad / count).reshape(student.shape))
        return total / count

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None, None, None, None


def chunked_divergence(fn: Divergence, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                       mask: torch.Tensor | None = None, chunk: int = 1024, **kwargs) -> torch.Tensor:
    """`fn(student_logits, teacher_logits, mask, **kwargs)` (mean reduction) computed `chunk` positions at a time.

    Shapes: logits `(..., V)`, mask `(...)`; returns a scalar. `fn` is any divergence of
    `kdbench.losses.divergences` (it must accept `reduction="none"`).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return _ChunkedDivergence.apply(student_logits, teacher_logits, mask, fn, chunk, kwargs)


class _FusedLinearDivergence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, teacher, mask, fn, chunk, kwargs):
        h, t = _flat(hidden), _flat(teacher.detach())
        m = _flat_mask(mask, h.shape[0], h.device)
        count = m.sum().clamp_min(1).to(torch.float32)
        grad_h = torch.zeros_like(h) if hidden.requires_grad else None
        grad_w = torch.zeros_like(weight) if weight.requires_grad else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, h.shape[0], chunk):
            part = slice(start, start + chunk)
            if not m[part].any():
                continue
            with torch.enable_grad():
                hp = h[part].detach().requires_grad_(grad_h is not None)
                w = weight.detach().requires_grad_(grad_w is not None)
                values = fn(hp @ w.T, t[part], mask=m[part], reduction="none", **kwargs).sum()
                wanted = [x for x in (hp, w) if x.requires_grad]
                grads = torch.autograd.grad(values, wanted) if wanted else ()
            grads = list(grads)
            if grad_h is not None:
                grad_h[part] = grads.pop(0)
            if grad_w is not None:
                grad_w += grads.pop(0)
            total += values.detach()
        ctx.save_for_backward(
            (grad_h / count).reshape(hidden.shape) if grad_h is not None else torch.empty(0),
            grad_w / count if grad_w is not None else torch.empty(0))
        ctx.has = (grad_h is not None, grad_w is not None)
        return total / count

    @staticmethod
    def backward(ctx, grad_output):
        grad_h, grad_w = ctx.saved_tensors
        return (grad_h * grad_output if ctx.has[0] else None, grad_w * grad_output if ctx.has[1] else None,
                None, None, None, None, None)


def fused_linear_divergence(fn: Divergence, hidden: torch.Tensor, lm_head_weight: torch.Tensor,
                            teacher_logits: torch.Tensor, mask: torch.Tensor | None = None, chunk: int = 1024,
                            **kwargs) -> torch.Tensor:
    """`fn(hidden @ lm_head_weight.T, teacher_logits, mask)` without materialising the student's logits.

    Shapes: hidden `(..., d)`, lm_head_weight `(V, d)` (a bias-free LM head, as Llama/SmolLM2/GPT-2 have),
    teacher_logits `(..., V)`, mask `(...)`. Gradients flow to `hidden` and `lm_head_weight`.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return _FusedLinearDivergence.apply(hidden, lm_head_weight, teacher_logits, mask, fn, chunk, kwargs)


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
