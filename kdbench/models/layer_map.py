"""Student → teacher layer mapping and the learned width projections.

Uniform map (TinyBERT): student layer m ∈ 1..M ← teacher layer g(m) =
round(m·N/M), with halves rounded up; the embeddings map 0 → 0. Hidden-state
index i is the output of layer i (index 0 = embeddings), as in HF outputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kdbench.errors import KdbenchError


def uniform_layers(student_layers: int, teacher_layers: int) -> list[int]:
    """Teacher layer g(m) = round(m·N/M) (halves up) for m = 1..M."""
    return [math.floor(m * teacher_layers / student_layers + 0.5) for m in range(1, student_layers + 1)]


def layer_pairs(spec: str, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student, teacher) hidden-state index pairs, embeddings 0 → 0 included.

    spec: "uniform"; "last" (only M → N, plus the embeddings); or an explicit
    list "[3,6]" giving g(1..M).
    """
    if spec == "uniform":
        targets = uniform_layers(student_layers, teacher_layers)
        return [(0, 0)] + list(zip(range(1, student_layers + 1), targets))
    if spec == "last":
        return [(0, 0), (student_layers, teacher_layers)]
    text = spec.strip().strip("[]")
    try:
        targets = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise KdbenchError(f"method.layer_map must be uniform, last or a list like [3,6], got {spec!r}") from None
    if len(targets) != student_layers or not all(1 <= t <= teacher_layers for t in targets):
        raise KdbenchError(
            f"method.layer_map {spec!r} must list {student_layers} teacher layers in 1..{teacher_layers}"
        )
    return [(0, 0)] + list(zip(range(1, student_layers + 1), targets))


class Projections(nn.Module):
    """One bias-free linear map H_s → H_t per mapped layer; identity when widths match.

    Trained with the student and discarded after training (TinyBERT's W_h).
    """

    def __init__(self, count: int, student_width: int, teacher_width: int):
        super().__init__()
        self.same_width = student_width == teacher_width
        self.maps = nn.ModuleList(
            [] if self.same_width else [nn.Linear(student_width, teacher_width, bias=False) for _ in range(count)]
        )

    def forward(self, i: int, hidden: torch.Tensor) -> torch.Tensor:
        return hidden if self.same_width else self.maps[i](hidden)
