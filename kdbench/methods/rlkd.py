"""`rlkd`: ranking-loss KD on the teacher's top-k peaks (Peng & Zhang, COLING 2025, arXiv 2409.12545).

    kdbench run suite=glue method=rlkd method.k=5 method.logits_loss=fkl
    kdbench run suite=glue method=rlkd method.dynamic=true

L = w_rank·L_rank + L_logits                        (paper form, w_rank = 2)
L = w_rank·L_rank + (|top-k(p) ∩ top-k(q)|/k)·L_logits   (dynamic, App. D)

L_rank is `kdbench.losses.rank_loss` (1 − soft Spearman on the union of the
top-k indices); L_logits is any divergence of `kdbench.losses` at temperature T
(default forward KL, T=1). No ground-truth CE (paper §3.3; `ce_weight` adds
it). The authors' code computes L_rank + L_logits/2: the same ratio at half the
scale (METHODS.md §5 #2). If L_rank is not finite, the step uses w_logits·L_logits
alone and the record counts it (`rank_nonfinite`). The authors' code then trains on
L_logits itself where its usual step is L_rank + L_logits/2, so in its own scale the
fallback doubles the logits term's weight; kdbench keeps the term's usual weight
(tests/methods/test_rlkd.py).

Temperature: `method.temperature` T enters L_logits only, dividing both logits
(p = softmax(z_t/T), q = softmax(z_s/T)) with no T² factor; RLKD trains at T = 1,
where the two readings agree. L_rank soft-ranks the raw logits and has no T (1/T on
both is the same as soft-rank strength × T, `kdbench.losses.rank_loss`).

The top-k union: `method.union=concat` (default) ranks the 2k concatenated indices,
duplicates included; `exact` the paper's set union; `authors` exactly what the
authors' `torch.unique(dim=-1)` does over one example's response positions (a column
is dropped only where it repeats an earlier one at every scored position: one
position means the exact union). The paper presets use `authors`.

k is clamped to the number of outputs V, since a top-k larger than V does not
exist. With V < 3 the rank term is dead: the Spearman correlation of two points
is always ±1, so each row's rank loss is exactly 0 or 2 and its gradient is ~0;
with V = 1 (a regression head) there is no ranking at all (the term is dropped
and the logits term is MSE(student, teacher)). Such a head (the encoder GLUE
form's 2-class tasks and STS-B) is refused before training, unless
`method.allow_small_head=true`; the record's `method_checks` then says what ran.
The causal-LM GLUE form (suite=glue) ranks the whole vocabulary at the answer
position, where the rank term is alive.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdbench.errors import KdbenchError
from kdbench.losses import rank_loss, topk_overlap
from kdbench.losses._reduce import reduce_positions
from kdbench.losses.ranking import UNIONS
from kdbench.methods.base import Step, output_mse, parts_of, register_method, supervised_loss
from kdbench.methods.kd import DivergenceParams, divergence


@dataclass(frozen=True)
class RLKDParams(DivergenceParams):
    w_rank: float = 2.0  # weight of the rank loss (paper: 2·L_rank + L_logits)
    k: int = 5  # top-k of teacher and student (5 fused, 10–15 rank-only)
    logits_loss: str = "fkl"  # fkl | rkl | jsd | gjsd | tvd | skl | srkl | akl | abkd ("AKL+R": logits_loss=akl)
    w_logits: float = 1.0  # weight of the logits loss; 0 gives rank-only ("Rank-k")
    union: str = "concat"  # concat (authors' code) | exact (paper's set union)
    dynamic: bool = False  # weight L_logits by the top-k overlap (App. D; KL/RKL only)
    temperature: float = 1.0  # T of the logits loss (RLKD uses 1)
    strength: float = 1.0  # soft-rank regularisation strength (torchsort default)
    ce_weight: float = 0.0  # optional CE on labels; RLKD uses none
    allow_small_head: bool = False  # run on a head with < 3 outputs anyway (the rank term is then constant)

    def __post_init__(self):
        self.check_divergence(self.logits_loss, "method.logits_loss")
        if self.union not in UNIONS:
            raise KdbenchError(f"method.union must be one of {', '.join(UNIONS)}, got {self.union!r}")
        if self.k < 1:
            raise KdbenchError(f"method.k must be >= 1, got {self.k}")


def rlkd_check(params: RLKDParams, outputs: int, task: str, vocabulary: bool) -> dict:
    """The effective k on a distribution of `outputs` entries (a classifier head's labels, or a `vocabulary`),
    and whether the rank term can learn there."""
    if vocabulary and params.k > outputs:
        raise KdbenchError(f"method.k={params.k} is larger than the vocabulary ({outputs} tokens); choose"
                           f" method.k<={outputs}")
    k = min(params.k, outputs)
    if outputs >= 3:
        return {"effective_k": k, "rank_term": "live"}
    why = ("a regression head has one output, so there is nothing to rank" if outputs == 1 else
           f"with {outputs} outputs the Spearman correlation of the top-{k} is always ±1, so the rank term is a"
           " constant (0 or 2 per row) with no gradient")
    if not params.allow_small_head:
        raise KdbenchError(f"method rlkd on {task}: {why}, and the run would be its logits loss alone. Use the"
                           " causal-LM GLUE form (suite=glue), which ranks the vocabulary, or pass"
                           " method.allow_small_head=true to run it anyway (the record says so)")
    return {"effective_k": k, "rank_term": "dropped" if outputs == 1 else "constant", "why": why,
            "allow_small_head": True}


@register_method("rlkd", params=RLKDParams, needs=frozenset({"logits"}), check_outputs=rlkd_check)
def rlkd_loss(step: Step, params: RLKDParams, state=None):
    """RLKD: w_rank·(1 − soft Spearman on top-k) + logits divergence."""
    s, t, mask = step.student.logits, step.teacher.logits, step.position_mask
    vocab = s.shape[-1]
    nonfinite = 0.0
    if vocab < 2:
        rank = s.new_zeros(())
        logits = output_mse(s, t)
    else:
        k = min(params.k, vocab)
        rank = rank_loss(s, t, mask, k=k, union=params.union, strength=params.strength)
        if not params.dynamic:
            logits = divergence(params.logits_loss, s, t, mask, params.temperature, params)
        else:  # App. D: each position's divergence weighted by the top-k overlap
            per_pos = divergence(params.logits_loss, s, t, None, params.temperature, params, reduction="none")
            logits = reduce_positions(per_pos * topk_overlap(s, t, k), mask, "mean")
        if not torch.isfinite(rank):
            rank, nonfinite = s.new_zeros(()), 1.0
    loss = params.w_rank * rank + params.w_logits * logits
    ce = s.new_zeros(())
    if params.ce_weight:
        ce = supervised_loss(step, s)
        loss = loss + params.ce_weight * ce
    return loss, parts_of(rank=rank, logits=logits, ce=ce, rank_nonfinite=nonfinite)
