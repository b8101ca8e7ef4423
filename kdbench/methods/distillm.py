"""`distillm`: skew KL with adaptive student-generated outputs (Ko et al., ICML 2024; jongwooko/distillm).

    kdbench run suite=char method=distillm
    kdbench run suite=char method=distillm method.divergence=srkl method.schedule=off

L = (1 − kd_ratio)·CE + kd_ratio·D, D = skew KL, KL(p ‖ αp + (1−α)q) (`skl`), or skew reverse KL,
KL(q ‖ (1−α)p + αq) (`srkl`), α = 0.1, mean over the scored tokens. kdbench reports the true divergence: the
authors' code drops the teacher-entropy constant of `skl` (their issue #7; the same gradient).

Adaptive student-generated outputs (SGO; METHODS.md §7, `finetune.py`), per micro-batch: draw r ~ U(0, 1) and
let s = θ·(1 − step/total_steps). If r < s, or r < θ while the replay buffer holds fewer than `replay_size`
samples: the batch's responses are sampled from the student, pushed to the FIFO buffer and trained on;
elif r < θ: a batch drawn at random from the buffer; else the gold responses. θ starts at `init_threshold`
(0) and, at each point of the validation curve, rises by 0.1 (at most 1) when the validation CE is at least
0.1 above the reference loss, which then becomes that CE (the reference is the step-0 point; as in the
authors' code it moves only when θ rises). The record keeps θ and the share of micro-batches per source
(`on_policy`). `schedule=off` trains on gold responses only (DistiLLM's loss without SGO). Sampling: T 1,
top-k 0, top-p 1, as the authors' SampleGenerator.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from kdbench.errors import KdbenchError
from kdbench.losses import skew_kl, skew_reverse_kl
from kdbench.methods.base import Step, parts_of, register_method, supervised_loss
from kdbench.rollouts import DataPolicy, check_sampling

SCHEDULES = ("adaptive", "off")
DIVERGENCES = {"skl": skew_kl, "srkl": skew_reverse_kl}


@dataclass(frozen=True)
class DistiLLMParams:
    divergence: str = "skl"  # skl (the authors' 0.1B GPT-2) | srkl (their larger models)
    skew: float = 0.1  # α
    kd_ratio: float = 1.0  # weight of D; 1 − kd_ratio goes to CE (the GPT-2 scripts: 1.0)
    schedule: str = "adaptive"  # adaptive: SGO; off: gold responses only
    init_threshold: float = 0.0  # θ at the start
    loss_eps: float = 0.1  # validation-CE rise that raises θ by 0.1
    replay_size: int = 1000  # FIFO replay buffer capacity (samples)
    temperature: float = 1.0  # sampling temperature
    max_new_tokens: int = 128  # longest sampled response (capped by train.max_length)

    def __post_init__(self):
        if self.divergence not in DIVERGENCES:
            raise KdbenchError(f"method.divergence for distillm must be one of {', '.join(DIVERGENCES)}, got"
                               f" {self.divergence!r}")
        if self.schedule not in SCHEDULES:
            raise KdbenchError(f"unknown method.schedule {self.schedule!r} for distillm; choose one of"
                               f" {', '.join(SCHEDULES)} (adaptive: student-generated outputs, off: none)")
        for name in ("skew", "kd_ratio", "init_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise KdbenchError(f"method.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.replay_size < 1:
            raise KdbenchError(f"method.replay_size must be >= 1, got {self.replay_size}")
        check_sampling(self.temperature, self.max_new_tokens)


class AdaptiveSGO(DataPolicy):
    """DistiLLM's adaptive off-policy schedule (see the module docstring)."""

    def __init__(self, params: DistiLLMParams):
        self.adaptive = params.schedule == "adaptive"
        self.theta, self.eps, self.capacity = params.init_threshold, params.loss_eps, params.replay_size
        self.temperature, self.max_new_tokens = params.temperature, params.max_new_tokens
        self.buffer: deque = deque(maxlen=params.replay_size)
        self.reference: float | None = None  # the validation CE θ's next rise is measured against

    def choose(self, step: int, max_steps: int, draw: float) -> str:
        if not self.adaptive:
            return "gold"
        sample_below = self.theta * (1 - step / max(max_steps, 1))
        if draw < sample_below or (draw < self.theta and len(self.buffer) < self.capacity):
            return "student"
        return "replay" if draw < self.theta else "gold"

    def remember(self, features: list[dict]) -> None:
        self.buffer.extend(features)

    def replay(self, count: int, draw: float) -> list[dict]:
        return random.Random(draw).sample(list(self.buffer), k=min(count, len(self.buffer)))

    def observe_validation(self, step: int, loss: float) -> None:
        if self.reference is None:
            self.reference = loss
        elif self.adaptive and loss >= self.reference + self.eps:
            self.theta, self.reference = min(1.0, round(self.theta + 0.1, 10)), loss

    def state_dict(self) -> dict:
        return {"theta": self.theta, "reference": self.reference, "buffer": list(self.buffer)}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.theta, self.reference = state["theta"], state["reference"]
            self.buffer.clear()
            self.buffer.extend(state["buffer"])

    def summary(self) -> dict:
        return {"theta": self.theta, "buffer": len(self.buffer), "schedule": "adaptive" if self.adaptive else "off"}


@register_method("distillm", params=DistiLLMParams, needs=frozenset({"logits"}),
                 data_policy=lambda p, seed: AdaptiveSGO(p))
def distillm_loss(step: Step, params: DistiLLMParams, state=None):
    """DistiLLM: (1 − kd_ratio)·CE + kd_ratio·skew KL (or skew RKL), on gold, sampled or replayed responses."""
    s, t = step.student.logits, step.teacher.logits
    soft = DIVERGENCES[params.divergence](s, t, step.position_mask, alpha=params.skew)
    hard = supervised_loss(step, s) if params.kd_ratio < 1 else soft.new_zeros(())
    return (1 - params.kd_ratio) * hard + params.kd_ratio * soft, parts_of(skew_kl=soft, ce=hard)
