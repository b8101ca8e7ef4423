"""A distillation method in one file, outside the package: logit matching by mean squared error.

    kdbench run suite=char method=logit_mse include=[examples/logit_mse.py]
    kdbench sweep suite=char methods=[none,kd,logit_mse] seeds=[0,1,2] include=[examples/logit_mse.py]
    kdbench leaderboard suite=char include=[examples/logit_mse.py]

L = α · MSE(z_s, z_t) + (1 − α) · CE(y, p_s), where MSE is the mean over the output dimension of the squared
difference of the raw student and teacher logits, averaged over the positions that carry a loss (all of a
classifier's rows; the labelled tokens of a causal LM). Kim et al. 2021, "Comparing Kullback-Leibler
Divergence and Mean Squared Error Loss in Knowledge Distillation" (IJCAI), find it a strong baseline
against KL at any temperature. Shapes: logits (B, C) or (B, T, V); position_mask (B,) or (B, T) or None.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from kdbench.errors import KdbenchError
from kdbench.methods import Step, register_method
from kdbench.methods.base import parts_of, supervised_loss


@dataclass(frozen=True)
class LogitMSEParams:
    alpha: float = 0.5  # weight of the logit-matching term; 1 − α goes to CE

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise KdbenchError(f"method.alpha must be in [0, 1], got {self.alpha}")


def logit_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the masked positions of mean_v (z_s − z_t)²; the teacher is a constant."""
    per_position = (student.float() - teacher.detach().float()).pow(2).mean(-1)
    if mask is None:
        return per_position.mean()
    weights = mask.float()
    return (per_position * weights).sum() / weights.sum().clamp_min(1.0)


@register_method("logit_mse", params=LogitMSEParams, needs=frozenset({"logits"}))
def logit_mse_loss(step: Step, params: LogitMSEParams, state=None):
    """Logit matching: α·MSE(student logits, teacher logits) + (1−α)·CE (Kim et al. 2021)."""
    soft = logit_mse(step.student.logits, step.teacher.logits, step.position_mask)
    hard = supervised_loss(step) if params.alpha < 1 else soft.new_zeros(())
    return params.alpha * soft + (1 - params.alpha) * hard, parts_of(mse=soft, ce=hard)
