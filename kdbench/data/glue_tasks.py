"""The nine GLUE tasks: files, columns, labels and official metrics.

Metrics follow the GLUE benchmark: CoLA Matthews correlation; STS-B Pearson
and Spearman; MRPC and QQP accuracy and F1; MNLI matched and mismatched
accuracy; accuracy for the rest. All are reported on a 0–100 scale.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GlueTask:
    name: str  # kdbench name, e.g. "sst2"
    folder: str  # folder under <data_root>/glue, e.g. "SST-2"
    hub_config: str  # config of the `nyu-mll/glue` hub dataset
    eval_splits: dict  # split name in records -> (local file, hub split)
    text_columns: tuple  # header names (or indices for header-less files)
    label_column: str | int
    labels: tuple | None  # None: regression
    metrics: tuple
    header: bool = True
    train_file: str = "train.tsv"

    @property
    def regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)


TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in [
        GlueTask("cola", "CoLA", "cola", {"dev": ("dev.tsv", "validation")}, (3,), 1, ("0", "1"), ("mcc",), header=False),
        GlueTask("sst2", "SST-2", "sst2", {"dev": ("dev.tsv", "validation")}, ("sentence",), "label", ("0", "1"), ("accuracy",)),
        GlueTask(
            "mrpc", "MRPC", "mrpc", {"dev": ("dev.tsv", "validation")},
            ("#1 String", "#2 String"), "Quality", ("0", "1"), ("accuracy", "f1"),
        ),
        GlueTask(
            "qqp", "QQP", "qqp", {"dev": ("dev.tsv", "validation")},
            ("question1", "question2"), "is_duplicate", ("0", "1"), ("accuracy", "f1"),
        ),
        GlueTask(
            "stsb", "STS-B", "stsb", {"dev": ("dev.tsv", "validation")},
            ("sentence1", "sentence2"), "score", None, ("pearson", "spearman"),
        ),
        GlueTask(
            "mnli", "MNLI", "mnli",
            {"matched": ("dev_matched.tsv", "validation_matched"), "mismatched": ("dev_mismatched.tsv", "validation_mismatched")},
            ("sentence1", "sentence2"), "gold_label", ("entailment", "neutral", "contradiction"), ("accuracy",),
        ),
        GlueTask(
            "qnli", "QNLI", "qnli", {"dev": ("dev.tsv", "validation")},
            ("question", "sentence"), "label", ("entailment", "not_entailment"), ("accuracy",),
        ),
        GlueTask(
            "rte", "RTE", "rte", {"dev": ("dev.tsv", "validation")},
            ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"), ("accuracy",),
        ),
        GlueTask(
            "wnli", "WNLI", "wnli", {"dev": ("dev.tsv", "validation")},
            ("sentence1", "sentence2"), "label", ("0", "1"), ("accuracy",),
        ),
    ]
}
