"""What a method sees of the teacher: one `TeacherOut` per batch, whichever source produced it.

A method reads `step.teacher.logits` (dense) or `step.teacher.topk` (the cached top-k approximation, which
only methods that declare `accepts_topk` are ever given), and `hidden_states` / `attentions` where it
asked for them. Logits are aligned with the step's targets: for a causal LM, position t holds the
distribution over token t+1 (the last position, which predicts nothing, is dropped), exactly as the
student's logits are in `Step`. Features keep the model's own indexing (`hidden_states[l]` `(B, T, H)`,
`attentions[l]` `(B, h, T, T)`; layers a cache did not keep are None).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TopK:
    """The teacher's k largest raw logits per position and where they are: values/indices `(B, T, k)`, and
    lse `(B, T)` = logsumexp(z / T) over the whole vocabulary at the method's temperature T, so the mass
    outside the top-k is known exactly (kdbench.losses.topk_kl.sparse_forward_kl)."""

    values: torch.Tensor
    indices: torch.Tensor
    lse: torch.Tensor

    def shifted(self) -> "TopK":
        return TopK(self.values[:, :-1], self.indices[:, :-1], self.lse[:, :-1])


@dataclass
class ByteAlignment:
    """Which response tokens of the student and of the teacher cover the same text (kdbench.data.byte_alignment):
    group indices in response order, `student_group` `(B, Ls)` and `teacher_group` `(B, Lt)` (-1: in no group,
    or padding), and the teacher's targets `(B, T_t)` aligned with its logits (−100 off the response)."""

    student_group: torch.Tensor
    teacher_group: torch.Tensor
    teacher_targets: torch.Tensor


@dataclass
class TeacherOut:
    """One batch of teacher outputs: dense `logits` `(B, C)` / `(B, T, V)`, or `topk`; features if asked."""

    logits: torch.Tensor | None = None
    topk: TopK | None = None
    hidden_states: list | tuple | None = None
    attentions: list | tuple | None = None
    # a teacher with its own tokenizer (kdbench.teacher.source.PairedTeacher): its response targets `(B, T_t)`
    position_mask: torch.Tensor | None = None
    alignment: ByteAlignment | None = None  # and, where the features carry them, its byte-alignment groups

    @classmethod
    def of(cls, model_out, batch: dict) -> "TeacherOut":
        """A model's outputs for `batch`, aligned with its targets (see the module doc)."""
        return cls(model_out.logits, None, getattr(model_out, "hidden_states", None),
                   getattr(model_out, "attentions", None)).aligned(batch)

    def aligned(self, batch: dict) -> "TeacherOut":
        """Token labels `(B, T)` mean a causal LM: position t predicts token t+1, so the last position goes."""
        if batch["labels"].dim() == 1:
            return self
        return TeacherOut(None if self.logits is None else self.logits[:, :-1],
                          None if self.topk is None else self.topk.shifted(), self.hidden_states, self.attentions)
