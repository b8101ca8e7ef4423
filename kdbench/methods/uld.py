"""`uld`: Universal Logit Distillation, across tokenizers (Boizard et al. 2024; Nicolas-BZRD/llm-recipes).

    kdbench run suite=rouge method=uld teacher=gemma3-270m        # Gemma-3 (262,144 words) -> SmolLM2 student

L = ce_weight·CE + distil_weight·ULD, ULD = the sorted-probability L1 of `kdbench.losses.uld` between the
student's and the teacher's next-token distributions at the k-th response position of each (alignment by
index), each model reading the example through its own tokenizer (and chat template). The teacher's side is
the runner's: a cross-tokenizer method gets the teacher's outputs on the teacher's tokenisation of the
batch's examples, with its response targets (`TeacherOut.position_mask`; kdbench.teacher.source.PairedTeacher).
With one tokenizer for both, the same code runs on the one tokenisation. Defaults as the authors'
`configs/distillation.py`: CE weight 1, distillation weight 1.5, both temperatures 1. The EOS is kept on both
sides (their `skip_*_eos` default). Generation suites only: the text suites cut text into blocks per
tokenizer, which pairs no example.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.errors import KdbenchError
from kdbench.losses.uld import uld_loss
from kdbench.methods.base import Step, parts_of, register_method, supervised_loss


@dataclass(frozen=True)
class ULDParams:
    distil_weight: float = 1.5  # the authors' `distil_factor`
    ce_weight: float = 1.0  # `cross_entropy_factor`
    student_temperature: float = 1.0
    teacher_temperature: float = 1.0

    def __post_init__(self):
        for name in ("student_temperature", "teacher_temperature"):
            if not getattr(self, name) > 0:
                raise KdbenchError(f"method.{name} must be > 0, got {getattr(self, name)}")
        for name in ("distil_weight", "ce_weight"):
            if getattr(self, name) < 0:
                raise KdbenchError(f"method.{name} must be >= 0, got {getattr(self, name)}")


def _check_outputs(params: ULDParams, outputs: int, task: str, vocabulary: bool) -> dict:
    if not vocabulary:
        raise KdbenchError(f"uld compares language models' next-token distributions, and {task} has a"
                           f" {outputs}-output classification head; use a generation suite (rouge, bleu, cer)")
    return {}


@register_method("uld", params=ULDParams, needs=frozenset({"logits"}), check_outputs=_check_outputs,
                 cross_tokenizer=True)
def uld(step: Step, params: ULDParams, state=None):
    """ULD: CE + 1.5 · sorted-probability L1 between the two models' response positions, paired by index."""
    teacher = step.teacher
    teacher_mask = teacher.position_mask if teacher.position_mask is not None else step.position_mask
    distil = uld_loss(step.student.logits, teacher.logits, step.position_mask, teacher_mask,
                      params.student_temperature, params.teacher_temperature)
    ce = supervised_loss(step)
    return params.ce_weight * ce + params.distil_weight * distil, parts_of(ce=ce, uld=distil)
