"""Universal Logit Distillation across tokenizers (Boizard et al. 2024; Nicolas-BZRD/llm-recipes
`models/distillation_model.py`, `DistillationLoss`).

Teacher and student each read the example through their own tokenizer, so neither their vocabularies nor
their positions correspond. ULD compares what does: the *sorted* probabilities. Position k of the response
of one model is paired with position k of the other's (alignment by index), and

    L_i = 1/n_i · Σ_{k < n_i} Σ_j | sort↓(q_{i,k})_j − sort↓(p_{i,k})_j |,    n_i = min(n_i^student, n_i^teacher)
    L   = mean of L_i over the rows with n_i > 0

with q = softmax(z_student / T_s), p = softmax(z_teacher / T_t) over each model's own vocabulary, the
shorter sorted vector zero-padded to the longer one (so its missing entries contribute the other's tail
mass). As the authors' loss: a mean over positions within each row, then over rows (not a mean over all
tokens of the batch); both distributions carry gradient only through the student. The method weighs it as
CE + 1.5·L (kdbench.methods.uld).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def response_positions(logits: torch.Tensor, mask: torch.Tensor, width: int) -> torch.Tensor:
    """The logits of each row's first `width` masked positions, in order: `(B, width, V)` (rows with fewer are
    padded with whatever follows; the caller masks them)."""
    order = torch.argsort((~mask.bool()).to(torch.int8), dim=1, stable=True)[:, :width]  # masked ones first
    return logits.gather(1, order[..., None].expand(-1, -1, logits.shape[-1]))


def sorted_l1(q_sorted: torch.Tensor, p_sorted: torch.Tensor) -> torch.Tensor:
    """Σ_j |a_j − b_j| of two descending probability vectors `(..., Va)`, `(..., Vb)`, the shorter zero-padded:
    the common part's L1 plus each one's mass beyond it (never materialising the padding)."""
    common = min(q_sorted.shape[-1], p_sorted.shape[-1])
    return ((q_sorted[..., :common] - p_sorted[..., :common]).abs().sum(-1)
            + q_sorted[..., common:].sum(-1) + p_sorted[..., common:].sum(-1))


def uld_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, student_mask: torch.Tensor,
             teacher_mask: torch.Tensor, student_temperature: float = 1.0, teacher_temperature: float = 1.0,
             reduction: str = "mean") -> torch.Tensor:
    """ULD's sorted-probability L1 (see the module docstring).

    Shapes: student_logits `(B, Ts, Vs)`, teacher_logits `(B, Tt, Vt)`, each aligned with its targets (position
    t predicts token t+1); student_mask `(B, Ts)` and teacher_mask `(B, Tt)` mark each model's response
    targets. Returns the mean over rows with a response in both (0 when there is none), or with
    `reduction="none"` the per-row L_i `(B,)` (0 for a row without one).
    """
    n_s, n_t = student_mask.bool().sum(1), teacher_mask.bool().sum(1)
    n = torch.minimum(n_s, n_t)
    width = int(n.max()) if n.numel() else 0
    if width == 0:
        zero = student_logits.sum() * 0.0  # keeps the graph: a batch without pairs gives 0 and no NaN
        return zero if reduction == "mean" else zero.expand(student_logits.shape[0]).clone()
    s = response_positions(student_logits, student_mask, width).float()
    t = response_positions(teacher_logits.detach(), teacher_mask, width).float()
    q = F.softmax(s / student_temperature, -1).sort(-1, descending=True).values
    p = F.softmax(t / teacher_temperature, -1).sort(-1, descending=True).values
    valid = torch.arange(width, device=n.device)[None, :] < n[:, None]
    per_position = torch.where(valid, sorted_l1(q, p), torch.zeros((), device=q.device))
    per_row = per_position.sum(1) / n.clamp_min(1)
    if reduction == "none":
        return per_row
    rows = n > 0
    return per_row[rows].mean()
