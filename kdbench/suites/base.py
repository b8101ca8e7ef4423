"""What a suite kind is: the contract every suite class keeps, on one screen.

A *suite* is a TOML preset (`suites/<name>.toml`: data, models, budgets); its `kind` names a *suite kind*,
a class registered here with `@register_suite_kind("name")`. A run calls, per task:

    suite.load(task, data_root, max_train, max_eval) -> data   # .name .train .evals .val .num_labels .regression .notes
    suite.hold_out(data, n)                                     # carve the validation slice off the training data
    suite.notes(tokenizer, data, cfg) -> [str]                  # what the record says of the data (default: load's)
    suite.build_model(name, data, seed, cache_dir, attention_maps)
    suite.train_loader(tokenizer, data, max_length, batch_size, seed, padding_side)   # batches with example_index
    suite.val_batches(tokenizer, data, cfg) -> (batches, order)   # the learning curve's slice, teacher-forced
    suite.evaluate(model, tokenizer, data, cfg, device) -> (scores, predictions)
    suite.trivial(tokenizer, data, cfg) -> {baseline: scores}    # rows that need no model
    suite.examples(data, predictions) -> per-example outputs (paired statistics), or None
    suite.diagnostics(student, teacher, tokenizer, data, cfg, device) -> {name: value}

The others have defaults below. A suite kind defined in a user's file (`include=[file.py]`) registers with
the same decorator and runs exactly like a built-in.
"""

from __future__ import annotations

from kdbench.errors import KdbenchError
from kdbench.registry import SUITE_KINDS, did_you_mean


class Suite:
    tasks: tuple = ()  # the task names this kind knows
    label: str = ""  # how messages name its tasks ("unknown GLUE task ...")
    # whether its training batches are token sequences (prompt + response, or text) that an on-policy method
    # can sample responses for (kdbench.rollouts); a classification suite's are not
    samples_responses: bool = False
    # training rows are examples (prompt, response) that any tokenizer can read: a cross-tokenizer method can
    # pair the student's and the teacher's tokenisations of each (`paired_features`)
    paired_examples: bool = False

    def __init__(self, info=None):
        self.info = info  # kdbench.config.SuiteInfo of the preset that named this kind (None: built by hand)

    # -- before any model loads
    def configure(self, cfg) -> None:
        """Check the run's options that only this kind reads. Default: it reads none."""
        if cfg.data.verbalizer:
            raise KdbenchError(f"data.verbalizer sets label words of the causal-LM GLUE form (suite=glue); suite"
                               f" {cfg.suite!r} has none")

    def task_names(self) -> list[str]:
        return list(self.tasks)

    def task_metrics(self, name: str) -> tuple:
        """The metric names a task reports (kdbench.metric_specs declares each)."""
        raise NotImplementedError

    def scores_complete(self, name: str, scores: dict) -> bool:
        """Whether cached teacher scores hold every metric this suite reports on the task. The cache key names
        the suite, not its metric: a suite file that changes its metric (bleu to bleu_cer) must score the teacher
        again. Kinds whose metrics the code fixes always say yes."""
        return True

    def check_tasks(self, tasks) -> None:
        for name in tasks:
            if name not in self.task_names():
                what = f"{self.label} task" if self.label else "task"
                raise KdbenchError(f"unknown {what} {name!r}; {did_you_mean(name, self.task_names())}")

    def check_tokenizer(self, tokenizer_of, tasks) -> None:
        """Checks that need the teacher's tokenizer, `tokenizer_of()`, but no model (label words). Default: none,
        and the tokenizer is not loaded."""

    # -- data and models
    def load(self, name: str, data_root, max_train: int, max_eval: int):
        raise NotImplementedError

    def hold_out(self, data, n: int) -> None:
        raise NotImplementedError

    def notes(self, tokenizer, data, cfg) -> list[str]:
        """What the record says of this task's data under this config (default: what `load` noted)."""
        return list(data.notes)

    def val_description(self, data) -> str:
        return f"{len(data.val.examples)} rows held out of the training data"

    def build_model(self, name: str, data, seed: int, cache_dir=None, attention_maps: bool = False):
        raise NotImplementedError

    def adapt(self, model):
        """A cached fine-tuned teacher as this kind trains and scores it (default: as loaded)."""
        return model

    def train_loader(self, tokenizer, data, max_length: int, batch_size: int, seed: int, padding_side="right"):
        raise NotImplementedError

    def paired_features(self, teacher_tokenizer, student_tokenizer, data, max_length: int,
                        byte_groups: bool = False) -> list[dict | None]:
        """The teacher's tokenisation of each training feature the student's `train_loader` yields, in its order
        (None where the teacher's tokens leave that example no response); suites with `paired_examples`.
        `byte_groups`: each teacher feature also carries both sides' byte-alignment groups of the response
        (`student_group`, `teacher_group`; kdbench.data.byte_alignment)."""
        raise NotImplementedError

    # -- scoring
    def val_batches(self, tokenizer, data, cfg) -> tuple[list[dict], list[int]]:
        raise NotImplementedError

    def val_metrics(self, data, logits) -> dict[str, float]:
        """Metrics of the validation slice from the classifier-shaped logits (default: the loss only)."""
        return {}

    def evaluate(self, model, tokenizer, data, cfg, device) -> tuple[dict, dict]:
        raise NotImplementedError

    def trivial(self, tokenizer, data, cfg) -> dict[str, dict[str, float]]:
        raise NotImplementedError

    def examples(self, data, predictions: dict) -> dict | None:
        return None

    def diagnostics(self, student, teacher, tokenizer, data, cfg, device) -> dict[str, float]:
        return {}


def register_suite_kind(name: str):
    """Class decorator: register a Suite subclass as the suite kind `name` (a TOML's `kind = "name"`)."""

    def deco(cls):
        if not issubclass(cls, Suite):
            raise KdbenchError(f"suite kind {name!r}: {cls.__name__} must subclass kdbench.suites.base.Suite")
        SUITE_KINDS.add(name, cls)
        return cls

    return deco
