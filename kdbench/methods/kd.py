"""`kd`: vanilla knowledge distillation (Hinton et al. 2015) and the token-level divergence family.

    kdbench run suite=glue method=kd method.temperature=2 method.alpha=0.5
    kdbench run suite=glue method=kd method.divergence=jsd method.beta=0.1

L = α·T²·D(p_t(T) ‖ p_s(T)) + (1−α)·CE(y, p_s(1)), with D the forward KL by
default (`method.divergence=` fkl | rkl | jsd | gjsd | tvd | skl | srkl | akl | abkd). The T²
factor offsets the 1/T² scale of the soft-target gradients (Hinton et al.).
GLUE defaults T=2, α=0.5 (METHODS.md §5 #5). For a regression head (STS-B) the
soft term is MSE(student, teacher), since a softmax over one output is constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.errors import KdbenchError
from kdbench.losses import DIVERGENCES
from kdbench.losses.topk_kl import sparse_forward_kl
from kdbench.methods.base import Step, output_mse, parts_of, register_method, supervised_loss
from kdbench.registry import did_you_mean


@dataclass(frozen=True)
class DivergenceParams:
    """The parameters of the divergences that have their own (kd's `divergence`, rlkd's `logits_loss`)."""

    beta: float = 0.5  # JSD(β) mixture weight, used when the divergence is jsd
    skew: float = 0.1  # skew α of skl/srkl (DistiLLM), used when the divergence is skl|srkl
    mu: float = 0.5  # AKL's head: the top teacher entries holding this mass (Wu et al. 2024), used by akl
    ab_alpha: float = 0.2  # ABKD's α (Wang et al. 2025; their GPT-2 scripts), used by abkd
    ab_beta: float = 0.7  # ABKD's β, used by abkd

    def check_divergence(self, name: str, key: str) -> None:
        check_divergence(name, key)
        if name in ("jsd", "gjsd") and not 0.0 <= self.beta <= 1.0:
            raise KdbenchError(f"method.beta must be in [0, 1] for {name}, got {self.beta}")
        if name in ("skl", "srkl") and not 0.0 <= self.skew <= 1.0:
            raise KdbenchError(f"method.skew must be in [0, 1] for {name}, got {self.skew}")
        if name == "akl" and not 0.0 < self.mu <= 1.0:
            raise KdbenchError(f"method.mu (AKL's head mass) must be in (0, 1], got {self.mu}")

    def extra(self, name: str) -> dict:
        """The keyword arguments divergence `name` takes beyond logits, mask and temperature."""
        return {"jsd": {"beta": self.beta}, "gjsd": {"beta": self.beta}, "skl": {"alpha": self.skew},
                "srkl": {"alpha": self.skew}, "akl": {"mu": self.mu},
                "abkd": {"alpha": self.ab_alpha, "beta": self.ab_beta}}.get(name, {})


@dataclass(frozen=True)
class KDParams(DivergenceParams):
    temperature: float = 2.0  # T, the same for teacher and student
    alpha: float = 0.5  # weight of the distillation term; 1−α goes to CE
    divergence: str = "fkl"  # fkl | rkl | jsd | gjsd | tvd | skl | srkl | akl | abkd

    def __post_init__(self):
        self.check_divergence(self.divergence, "method.divergence")
        if not 0.0 <= self.alpha <= 1.0:
            raise KdbenchError(f"method.alpha must be in [0, 1], got {self.alpha}")
        if not self.temperature > 0:
            raise KdbenchError(f"method.temperature must be > 0, got {self.temperature}")


def check_divergence(name: str, key: str) -> None:
    if name not in DIVERGENCES:
        raise KdbenchError(f"unknown {key} {name!r}; {did_you_mean(name, list(DIVERGENCES))}")


def divergence(name: str, student_logits, teacher_logits, mask, temperature, params: DivergenceParams,
               reduction="mean"):
    """Call the divergence `name` of `kdbench.losses` with its own parameters, taken from `params`."""
    return DIVERGENCES[name](student_logits, teacher_logits, mask, temperature=temperature, reduction=reduction,
                             **params.extra(name))


@register_method("kd", params=KDParams, needs=frozenset({"logits"}),
                 accepts_topk=lambda p: p.divergence == "fkl")
def kd_loss(step: Step, params: KDParams, state=None):
    """Hinton KD: α·T²·D(teacher ‖ student at T) + (1−α)·CE."""
    s = step.student.logits
    if step.teacher.topk is not None:  # the top-k teacher (forward KL only): its tail as one bucket
        top = step.teacher.topk
        soft = params.temperature**2 * sparse_forward_kl(s, top.values, top.indices, top.lse, step.position_mask,
                                                         params.temperature)
        hard = supervised_loss(step, s) if params.alpha < 1 else soft.new_zeros(())
        return params.alpha * soft + (1 - params.alpha) * hard, parts_of(kd=soft, ce=hard)
    t = step.teacher.logits
    if step.regression:
        soft = output_mse(s, t)
    else:
        soft = params.temperature**2 * divergence(params.divergence, s, t, step.position_mask, params.temperature,
                                                  params)
    hard = supervised_loss(step, s) if params.alpha < 1 else soft.new_zeros(())
    loss = params.alpha * soft + (1 - params.alpha) * hard
    return loss, parts_of(kd=soft, ce=hard)
