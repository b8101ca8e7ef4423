"""One run's distillation, bound once: the method, its params, its own trainable modules and its teacher.

    distiller = Distiller(method, params, state, teacher_source)
    loss, parts = distiller.loss(step)

The runner takes a Distiller and asks it for the teacher's outputs and the loss of each step; it never
rebuilds the method's arguments. The teacher's own fine-tuning is a Distiller of `none` without a teacher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from kdbench.methods.base import Method, Step


@dataclass(frozen=True)
class Distiller:
    method: Method
    params: Any
    state: torch.nn.Module | None = None  # the method's trainable modules (fakd's projections), trained with the student
    teacher: Any = None  # a kdbench.teacher.source.TeacherSource; None when the method needs no teacher
    policy: Any = None  # a kdbench.rollouts.DataPolicy for an on-policy method (None: the data set's batches)

    @property
    def needs(self) -> frozenset:
        """The outputs the method reads of the teacher, and so of the student."""
        return self.method.needs(self.params)

    def loss(self, step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        return self.method.loss(step, self.params, self.state)
