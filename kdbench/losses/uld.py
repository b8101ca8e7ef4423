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


def response_order(mask: torch.Tensor, width: int) -> torch.Tensor:
    """The indices of each row's first `width` masked positions, in order `(B, width)` (rows with fewer are
    padded with whatever follows; the caller masks them)."""
    return torch.argsort((~mask.bool()).to(torch.int8), dim=1, stable=True)[:, :width]  # masked ones first


def response_positions(logits: torch.Tensor, mask: torch.Tensor, width: int) -> torch.Tensor:
    """The logits of each row's first `width` masked positions, in order: `(B, width, V)`."""
    order = response_order(mask, width)
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


def merged_sorted(logits: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor, group: torch.Tensor,
                  groups: int, temperature: float, merge: str) -> torch.Tensor:
    """Each byte-alignment group's merged distribution, sorted descending: `(B, groups, V)`.

    A group of tokens t_i..t_j covers one piece of text; its distribution is the anchor position's (the
    first, `merge="first"`, GOLD's "observed"; or the last, `"last"`, its "bayesian") times the probability
    the model gave each other token of the group, p_anchor(·) · Π_{m≠anchor} p_m(t_m): an unnormalised
    distribution over the text's continuations. A single-token group is that position's distribution.
    `group` `(B, L)` holds each response position's group index in response order (-1: none)."""
    width = group.shape[1]
    order = response_order(mask, width)
    log_probs = F.log_softmax(logits.gather(1, order[..., None].expand(-1, -1, logits.shape[-1])).float()
                              / temperature, -1)
    taken = log_probs.gather(-1, targets.gather(1, order).clamp_min(0)[..., None]).squeeze(-1)  # log p_m(t_m)
    slot = torch.where(group >= 0, group, groups)  # positions in no group fall in one extra slot, dropped
    taken = torch.where(group >= 0, taken, torch.zeros((), device=taken.device))
    position = torch.arange(width, device=group.device).expand_as(group)
    empty = width if merge == "first" else -1
    anchor = torch.full((group.shape[0], groups + 1), empty, device=group.device).scatter_reduce(
        1, slot, position, "amin" if merge == "first" else "amax")[:, :groups].clamp(0, width - 1)
    others = (torch.zeros(group.shape[0], groups + 1, device=taken.device).scatter_add(1, slot, taken)[:, :groups]
              - taken.gather(1, anchor))
    at_anchor = log_probs.gather(1, anchor[..., None].expand(-1, -1, log_probs.shape[-1]))
    return at_anchor.sort(-1, descending=True).values.exp() * others.exp()[..., None]


def uld_bytes_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, student_mask: torch.Tensor,
                   teacher_mask: torch.Tensor, student_targets: torch.Tensor, teacher_targets: torch.Tensor,
                   student_group: torch.Tensor, teacher_group: torch.Tensor, student_temperature: float = 1.0,
                   teacher_temperature: float = 1.0, merge: str = "first", reduction: str = "mean") -> torch.Tensor:
    """ULD with GOLD's byte-offset alignment (TRL `trl/experimental/gold/gold_trainer.py`, `ULDLoss` with
    `use_extended_uld`): instead of pairing the k-th response token of each side, pair the k-th *group*
    (kdbench.data.byte_alignment: the runs of tokens of both tokenisations that end at the same byte), each
    merged into one distribution (`merged_sorted`), and

        L_i = 1/G_i · Σ_g Σ_j | sort↓(q̃_{i,g})_j − sort↓(p̃_{i,g})_j |,    L = mean of L_i over rows with G_i > 0

    Shapes: logits/masks as `uld_loss`; targets `(B, T)` aligned with each side's logits; groups `(B, L)` in
    response order (-1: in no group). Both sides' logits here predict their own target (GOLD's "observed"
    slicing reads one position later, a shift ULD's code also has; kdbench reads the aligned position).
    With every group a single token on both sides this is exactly `uld_loss`.
    """
    counts = torch.maximum(student_group.max(1).values, teacher_group.max(1).values) + 1  # groups per row
    groups = int(counts.max()) if counts.numel() else 0
    if groups <= 0:
        zero = student_logits.sum() * 0.0
        return zero if reduction == "mean" else zero.expand(student_logits.shape[0]).clone()
    q = merged_sorted(student_logits, student_mask, student_targets, student_group, groups, student_temperature,
                      merge)
    with torch.no_grad():
        p = merged_sorted(teacher_logits, teacher_mask, teacher_targets, teacher_group, groups,
                          teacher_temperature, merge)
    valid = torch.arange(groups, device=counts.device)[None, :] < counts[:, None]
    per_group = torch.where(valid, sorted_l1(q, p), torch.zeros((), device=q.device))
    per_row = per_group.sum(1) / counts.clamp_min(1)
    if reduction == "none":
        return per_row
    return per_row[counts > 0].mean()
