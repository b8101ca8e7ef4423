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

`method.align=bytes` pairs by text instead of by index, as TRL's GOLD does (`use_extended_uld`): the runs of
tokens of both tokenisations that end at the same byte of the response form groups, the k-th of one side
paired with the k-th of the other, each merged into one distribution (`method.merge=first`: the first token's
distribution times the later tokens' probabilities, GOLD's "observed" default; `last`: its "bayesian"). GOLD's
hybrid loss (β-JSD on tokens whose strings match) is not built. Deviations from GOLD: EOS kept (GOLD skips it by
default, ULD keeps it), each position reads the logits that predict its own token, and tokens after the last
common byte boundary (a side cut by max_length) pair with nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.errors import KdbenchError
from kdbench.losses.uld import uld_bytes_loss, uld_loss
from kdbench.methods.base import Step, parts_of, register_method, supervised_loss


@dataclass(frozen=True)
class ULDParams:
    distil_weight: float = 1.5  # the authors' `distil_factor`
    ce_weight: float = 1.0  # `cross_entropy_factor`
    student_temperature: float = 1.0
    teacher_temperature: float = 1.0
    # index: the k-th response token of each side (ULD); bytes: the k-th run of tokens that ends at the same
    # byte on both sides, merged (TRL GOLD's extended ULD; kdbench.data.byte_alignment)
    align: str = "index"
    merge: str = "first"  # bytes only: a group's distribution is its first token's (GOLD "observed") or last's

    def __post_init__(self):
        if self.align not in ("index", "bytes"):
            raise KdbenchError(f"method.align must be index or bytes, got {self.align!r}")
        if self.merge not in ("first", "last"):
            raise KdbenchError(f"method.merge must be first or last, got {self.merge!r}")
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
    if params.align == "bytes":
        if teacher.alignment is None:
            raise KdbenchError("method.align=bytes needs the byte-alignment groups of a paired generation suite")
        a = teacher.alignment
        distil = uld_bytes_loss(step.student.logits, teacher.logits, step.position_mask, teacher_mask,
                                step.labels, a.teacher_targets, a.student_group, a.teacher_group,
                                params.student_temperature, params.teacher_temperature, params.merge)
    else:
        distil = uld_loss(step.student.logits, teacher.logits, step.position_mask, teacher_mask,
                          params.student_temperature, params.teacher_temperature)
    ce = supervised_loss(step)
    return params.ce_weight * ce + params.distil_weight * distil, parts_of(ce=ce, uld=distil)
