"""`gkd`: generalised knowledge distillation, on-policy (Agarwal et al., ICLR 2024; TRL's GKDTrainer).

    kdbench run suite=char method=gkd
    kdbench run suite=char method=gkd method.lmbda=1 method.beta=0      # on-policy forward KL
    kdbench run suite=bleu method=gkd method.seq_kd=true

L = generalised JSD(β) between teacher p and student q on each response token (`kdbench.losses.generalized_jsd`,
TRL's `generalized_jsd_loss`: β = 0 is KL(p‖q), β = 1 is KL(q‖p)), mean over the scored tokens of the
micro-batch (TRL's per-token normalisation; under gradient accumulation every micro-batch weighs 1/grad_accum,
TRL #4719). No CE. The responses come, per micro-batch (METHODS.md §7, TRL's `training_step`): with
probability λ from the current student (sampled at `temperature`), otherwise the data set's (or, with
`seq_kd=true`, sampled from the teacher). The sampling is the runner's (kdbench.rollouts), not this file's.
Defaults as TRL's GKDConfig: β 0.5, λ 0.5, temperature 0.9, max_new_tokens 128 (capped by train.max_length).
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.errors import KdbenchError
from kdbench.losses import generalized_jsd
from kdbench.methods.base import Step, parts_of, register_method
from kdbench.rollouts import DataPolicy, check_sampling


@dataclass(frozen=True)
class GKDParams:
    beta: float = 0.5  # JSD(β): 0 forward KL, 1 reverse KL
    lmbda: float = 0.5  # share of micro-batches whose responses the student samples (λ; TRL's `lmbda`)
    temperature: float = 0.9  # sampling temperature (the loss is at T = 1, as TRL's)
    seq_kd: bool = False  # the other micro-batches' responses are sampled from the teacher instead of the data's
    max_new_tokens: int = 128  # longest sampled response (capped so that prompt + response fit train.max_length)

    def __post_init__(self):
        if not 0.0 <= self.lmbda <= 1.0:
            raise KdbenchError(f"method.lmbda (the share of student-sampled batches) must be in [0, 1], got {self.lmbda}")
        if not 0.0 <= self.beta <= 1.0:
            raise KdbenchError(f"method.beta must be in [0, 1], got {self.beta}")
        check_sampling(self.temperature, self.max_new_tokens)


class GKDPolicy(DataPolicy):
    """With probability λ the student's samples, else the data set's responses (or the teacher's samples)."""

    def __init__(self, params: GKDParams):
        self.lmbda, self.seq_kd = params.lmbda, params.seq_kd
        self.temperature, self.max_new_tokens = params.temperature, params.max_new_tokens

    def choose(self, step: int, max_steps: int, draw: float) -> str:
        if draw < self.lmbda:
            return "student"
        return "teacher" if self.seq_kd else "gold"

    def summary(self) -> dict:
        return {"lmbda": self.lmbda, "seq_kd": self.seq_kd, "temperature": self.temperature}


@register_method("gkd", params=GKDParams, needs=frozenset({"logits"}), data_policy=lambda p, seed: GKDPolicy(p))
def gkd_loss(step: Step, params: GKDParams, state=None):
    """GKD: generalised JSD(β) on gold, student-sampled or teacher-sampled responses."""
    loss = generalized_jsd(step.student.logits, step.teacher.logits, step.position_mask, beta=params.beta)
    return loss, parts_of(jsd=loss)
