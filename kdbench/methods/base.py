"""What a method is: a params dataclass, the outputs it needs, and one loss call.

The runner calls `method.loss(step, params, state)` once per training step and
never changes per method (ARCHITECTURE.md, "one readable loop").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from kdbench.registry import METHODS

# Outputs a method can ask of the teacher (and, with them, of the student).
OUTPUTS = ("logits", "hidden_states", "attentions")


@dataclass
class Step:
    """The tensors of one training step, as the method's loss sees them.

    student/teacher: model outputs with `.logits` `(B, C)` or `(B, T, V)` and,
    when asked for, `.hidden_states` (L+1 of `(B, T, H)`) and `.attentions`
    (L of `(B, h, T, T)`). `teacher` is None for methods that need no teacher.
    labels: `(B,)` class ids / scores, or `(B, T)` token ids with −100 ignored.
    position_mask: `(B,)` or `(B, T)` positions that carry a loss (None = all).
    attention_mask: `(B, T)` non-pad tokens, for feature losses.
    regression: the task has one real-valued output (GLUE STS-B).
    soft_targets: (ids `(B, K)`, weights `(B, K)`) when a label is spread over K outputs (the causal-LM GLUE
    form's STS-B: a score between two digit words); the supervised loss is then the CE against it.
    rollout: what an on-policy method's data policy put beside a batch it built (the batch's `rollout_*`
    tensors, prefix dropped): `(B,)` per row, or `(B, T)` per token aligned with `labels` like the logits
    (MiniLLM: which rows are samples, their old log-probabilities, rewards and importance weights).
    """

    student: Any
    teacher: Any | None
    labels: torch.Tensor
    attention_mask: torch.Tensor
    position_mask: torch.Tensor | None = None
    regression: bool = False
    soft_targets: tuple | None = None
    rollout: dict | None = None


@dataclass(frozen=True)
class Method:
    name: str
    params: type
    loss: Callable[[Step, Any, Any], tuple[torch.Tensor, dict[str, float]]]
    needs: Callable[[Any], frozenset[str]]
    build_state: Callable[[Any, Any, Any], torch.nn.Module | None] | None = None
    summary: str = ""
    # whether the loss accepts a causal LM teacher given as top-k logits (TeacherOut.topk) instead of dense ones
    accepts_topk: Callable[[Any], bool] = lambda params: False
    # (hidden-state indices, attention indices) of the teacher that the loss reads, so that a classifier's
    # teacher-output cache can keep only those layers; None: the teacher's features run live
    teacher_layers: Callable[[Any, Any, Any], tuple[tuple[int, ...], tuple[int, ...]]] | None = None
    # (params, number of outputs of the distilled distribution, task name, whether those are a vocabulary) ->
    # what the record should say of the method on this task, or a KdbenchError when it cannot work there
    check_outputs: Callable[[Any, int, str, bool], dict] | None = None
    # (params, run seed) -> a kdbench.rollouts.DataPolicy: the method trains on sampled responses (on-policy),
    # which the runner draws for it; None: it trains on the data set's batches only
    data_policy: Callable[[Any, int], Any] | None = None
    # the teacher may read the data through its own tokenizer (ULD): the runner gives the loss the teacher's
    # outputs on the teacher's tokenisation of the batch's examples, with its response positions
    # (TeacherOut.position_mask); every other method needs one tokenised batch for both models
    cross_tokenizer: bool = False

    def make_params(self, values: dict[str, Any]):
        return self.params(**values)

    def reads_teacher(self, params) -> bool:
        """Whether training reads anything of the teacher: its outputs, or responses drawn with it. A method that
        reads nothing (`none`) trains the same student whatever the teacher, so any teacher may stand beside it."""
        return bool(self.needs(params)) or self.data_policy is not None


def register_method(name: str, *, params: type, needs, build_state=None, summary: str = "", accepts_topk=None,
                    teacher_layers=None, check_outputs=None, data_policy=None, cross_tokenizer=False):
    """Decorator: register the loss adapter `fn(step, params, state)` as method `name`.

    `needs` is a set of teacher outputs, or a function of the params returning one. The loss reads them from
    `step.teacher` (kdbench.teacher.outputs.TeacherOut). `accepts_topk(params)` says whether the loss also
    takes an LM teacher given as top-k logits, `step.teacher.topk` (default: never; it then always gets
    dense logits). `teacher_layers(params, student_config, teacher_config)` → (hidden-state indices,
    attention indices) the loss reads from the teacher, so that the teacher-output cache can keep just those
    (default: features run live).
    `check_outputs(params, outputs, task, vocabulary)` → a dict for the record, or KdbenchError before training.
    `data_policy(params, seed)` → a kdbench.rollouts.DataPolicy: per micro-batch the runner asks it whether to
    train on the data set's batch or on responses it samples from the student or the teacher (on-policy
    methods; only on suites whose batches are prompts and responses or text).
    `cross_tokenizer`: the method distils between models with different tokenizers (see Method).
    """

    def needs_fn(p) -> frozenset[str]:
        return frozenset(needs(p) if callable(needs) else needs)

    def deco(fn):
        first_doc_line = next(iter((fn.__doc__ or "").strip().splitlines()), "")
        METHODS.add(name, Method(name, params, fn, needs_fn, build_state, summary or first_doc_line,
                                 accepts_topk or (lambda p: False), teacher_layers, check_outputs, data_policy,
                                 cross_tokenizer))
        return fn

    return deco


def task_loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    """The supervised loss: CE on labels (−100 ignored), or MSE for a regression head.

    The CE is a sum over the labelled positions divided by their count clamped to
    1, so a batch without a single labelled token gives 0, not NaN.
    """
    if regression:
        return F.mse_loss(logits.float().squeeze(-1), labels.float())
    flat = labels.reshape(-1)
    total = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), flat, ignore_index=-100, reduction="sum")
    return total / (flat != -100).sum().clamp_min(1)


def supervised_loss(step: Step, logits: torch.Tensor | None = None) -> torch.Tensor:
    """The step's supervised loss on `logits` (default: the student's): `task_loss`, or, with soft targets,
    CE = −Σ_j w_j · log softmax(z)_{id_j}, averaged over the batch (shapes `(B, V)`, ids/weights `(B, K)`)."""
    logits = step.student.logits if logits is None else logits
    if step.soft_targets is None:
        return task_loss(logits, step.labels, step.regression)
    ids, weights = step.soft_targets
    log_probs = F.log_softmax(logits.float(), -1)
    return -(log_probs.gather(-1, ids) * weights.float()).sum(-1).mean()


def output_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Distillation term for a regression head, where a softmax over one output is meaningless."""
    return F.mse_loss(student_logits.float(), teacher_logits.detach().float())


def parts_of(**terms: torch.Tensor | float) -> dict[str, float]:
    return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in terms.items()}
