"""Teacher–student distribution diagnostics on the eval set, stored per run as record["diagnostics"][task].

- mor@k: mean over scored positions of |top-k(teacher) ∩ top-k(student)| / k (RLKD's MOR@k, set overlap), 0–100.
- cr@k: share of scored positions whose ordered top-k lists are identical (RLKD's CR@k), 0–100.
- kl_teacher: mean KL(p_teacher ‖ p_student) at T = 1 over scored positions (nats).
- ece (classification): expected calibration error of the student, 15 equal-width confidence bins, 0–100:
  Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|.
Language models are scored on the first `LM_EXAMPLES` eval examples, teacher-forced on the reference, at the
response (or all text) tokens; classifiers on the whole eval split (agree@1 = top-1 agreement).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdbench.losses import forward_kl
from kdbench.metric_specs import DIAGNOSTIC_K
from kdbench.models.placement import to_device

LM_K = DIAGNOSTIC_K  # declared with the metrics mor@k and cr@k it names
LM_EXAMPLES = 64
ECE_BINS = 15


def topk_agreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(overlap share, identical-order flag) per position, for logits `(N, V)`."""
    t = teacher_logits.topk(k, dim=-1).indices
    s = student_logits.topk(k, dim=-1).indices
    overlap = (t[:, :, None] == s[:, None, :]).any(-1).float().mean(-1)
    return overlap, (t == s).all(-1).float()


def kl_per_position(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_teacher ‖ q_student) at T = 1 per position: `kdbench.losses.forward_kl`, unreduced."""
    return forward_kl(student_logits, teacher_logits, reduction="none")


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error (0–100) of class probabilities `(N, C)` against integer labels `(N,)`."""
    conf, pred = probs.max(-1)
    correct = (pred == labels).float()
    edges = torch.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if in_bin.any():
            total += in_bin.float().mean().item() * abs(correct[in_bin].mean().item() - conf[in_bin].mean().item())
    return 100.0 * total


def classification(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels) -> dict[str, float]:
    out = {"agree@1": 100.0 * (student_logits.argmax(-1) == teacher_logits.argmax(-1)).float().mean().item(),
           "kl_teacher": kl_per_position(student_logits, teacher_logits).mean().item()}
    out["ece"] = ece(F.softmax(student_logits.float(), -1), torch.as_tensor(labels))
    return out


@torch.no_grad()
def language_model(student, teacher, loader, device, k: int = LM_K) -> dict[str, float]:
    """mor@k, cr@k and kl_teacher over the target tokens of an LM loader (labels −100 are not scored)."""
    from kdbench.runner import model_inputs

    student, teacher = student.to(device).eval(), to_device(teacher, device).eval()
    overlap, identical, kl = [], [], []
    for batch in loader:
        batch = {n: v.to(device) for n, v in batch.items()}
        s = student(**model_inputs(batch)).logits[:, :-1]
        t = teacher(**model_inputs(batch)).logits[:, :-1]
        keep = batch["labels"][:, 1:] != -100
        s, t = s[keep].float(), t[keep].float()
        o, c = topk_agreement(s, t, k)
        overlap.append(o.cpu()), identical.append(c.cpu()), kl.append(kl_per_position(s, t).cpu())
    if not overlap:
        return {}
    return {f"mor@{k}": 100.0 * torch.cat(overlap).mean().item(), f"cr@{k}": 100.0 * torch.cat(identical).mean().item(),
            "kl_teacher": torch.cat(kl).mean().item()}
