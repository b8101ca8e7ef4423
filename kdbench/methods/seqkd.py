"""`seqkd`: sequence-level knowledge distillation (Kim & Rush 2016; a baseline in RLKD Table 2 and MiniLLM Table 1).

    kdbench run suite=bleu method=seqkd
    kdbench run suite=char method=seqkd method.decoding=sample method.temperature=1

The teacher answers every training prompt (greedy by default, or sampled); the student trains with CE on
those responses in place of the gold ones. The responses are generated when an example is first drawn and
cached (kdbench.teacher.responses: keyed by the teacher's weights, the tokenizer, the prompt set, the
decoding and the length cap), so later seeds and methods read them back. The generation is the runner's
on-policy step (kdbench.rollouts) with the source "teacher" on every micro-batch. No teacher logits are
read. A plain-text block (char, perplexity) is split in half: the teacher continues its first half.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.errors import KdbenchError
from kdbench.methods.base import Step, parts_of, register_method, supervised_loss
from kdbench.rollouts import DataPolicy, check_sampling

DECODINGS = ("greedy", "sample")


@dataclass(frozen=True)
class SeqKDParams:
    decoding: str = "greedy"  # greedy | sample (at `temperature`, top-k 0, top-p 1, seeded per micro-batch)
    temperature: float = 1.0  # when decoding=sample
    max_new_tokens: int = 128  # longest teacher response (capped so that prompt + response fit train.max_length)

    def __post_init__(self):
        if self.decoding not in DECODINGS:
            raise KdbenchError(f"method.decoding must be one of {', '.join(DECODINGS)}, got {self.decoding!r}")
        check_sampling(self.temperature, self.max_new_tokens)


class TeacherResponsesPolicy(DataPolicy):
    """Every micro-batch: the teacher's cached (or now generated) responses to its prompts."""

    wants_responses = True

    def __init__(self, params: SeqKDParams):
        self.greedy, self.temperature, self.max_new_tokens = (params.decoding == "greedy", params.temperature,
                                                              params.max_new_tokens)

    def choose(self, step: int, max_steps: int, draw: float) -> str:
        return "teacher"

    def summary(self) -> dict:
        return {"decoding": "greedy" if self.greedy else f"sample at T={self.temperature}",
                "max_new_tokens": self.max_new_tokens}


@register_method("seqkd", params=SeqKDParams, needs=frozenset(), data_policy=lambda p, seed: TeacherResponsesPolicy(p))
def seqkd_loss(step: Step, params: SeqKDParams, state=None):
    """SeqKD: CE on the teacher's responses."""
    ce = supervised_loss(step)
    return ce, parts_of(ce=ce)
