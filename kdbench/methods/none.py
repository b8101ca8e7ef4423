"""`none`: the student trained on the labels only; the floor every method must beat.

    kdbench run suite=glue method=none
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.methods.base import Step, parts_of, register_method, supervised_loss


@dataclass(frozen=True)
class NoneParams:
    """No parameters: cross-entropy (or MSE for regression) on the labels."""


@register_method("none", params=NoneParams, needs=frozenset())
def none_loss(step: Step, params: NoneParams, state=None):
    """Student on labels only: CE (MSE for regression), no teacher."""
    loss = supervised_loss(step)
    return loss, parts_of(ce=loss)
