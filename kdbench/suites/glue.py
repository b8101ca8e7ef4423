"""GLUE with encoder classifiers (suite glue_enc): the nine tasks on their dev sets, official metrics (0–100).

    kdbench run suite=glue_enc method=kd tasks=[sst2,rte] data_dir=../shared/data

Version history (bump when a number can move): 2 (suite glue_enc): a
validation slice is held out of the training rows; 1: first release; sentence
pairs are encoded as one [CLS] a [SEP] b [SEP] input, truncated to
train.max_length tokens.
Data: <data_root>/glue/<Task>/{train,dev}.tsv (GLUE TSV format), else the hub
dataset `nyu-mll/glue` when online. Labelled GLUE test sets are not public, so
scores are on dev sets, as in DistilBERT, MiniLM and TinyBERT's dev tables.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from kdbench.suites.base import Suite, register_suite_kind
from kdbench.data.batching import Collator, encode, eval_loader, train_loader
from kdbench.data.glue_tasks import TASKS, GlueTask
from kdbench.data.hub import hub_offline, hub_split
from kdbench.data.local import Split, glue_path, local_split
from kdbench.errors import KdbenchError
from kdbench.metric_specs import compute, on_split
from kdbench.models.load import load_classifier
from kdbench.validation import predict
from kdbench.validation import batches, carve


@dataclass
class TaskData:
    task: GlueTask
    train: Split
    evals: dict  # split name -> Split
    val: Split | None = None  # rows held out of train for learning curves (kdbench.validation)
    notes: list = field(default_factory=list)  # what the record says of the data (none for GLUE's files)

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def num_labels(self) -> int:
        return self.task.num_labels

    @property
    def regression(self) -> bool:
        return self.task.regression


def _split(task: GlueTask, data_root: Path | None, filename: str, hub_name: str) -> Split:
    tried = []
    if data_root is not None:
        found = local_split(task, data_root, filename)
        if found is not None:
            return found
        tried.append(str(glue_path(task, data_root, filename)))
    if hub_offline():
        tried.append("hub nyu-mll/glue (skipped: HF_HUB_OFFLINE is set)")
    else:
        try:
            return hub_split(task, hub_name)
        except Exception as e:  # any hub failure becomes the one readable message below
            tried.append(f"hub nyu-mll/glue/{task.hub_config} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    raise KdbenchError(
        f"no data for GLUE {task.name} {hub_name}; tried: {'; '.join(tried)}."
        " Point data_dir= (or KDBENCH_DATA_DIR) at a data root with glue/<Task>/*.tsv, or pick other tasks="
    )


def _first(split: Split, n: int) -> Split:
    return split if not n else Split(split.examples[:n], split.source, split.sha256)


@register_suite_kind("glue")
class GlueSuite(Suite):
    """The GLUE tasks: data loading and scoring. Training lives in the runner."""

    tasks = tuple(TASKS)
    label = "GLUE"

    def task_metrics(self, name: str) -> tuple:
        return TASKS[name].metrics

    def load(self, name: str, data_root: Path | None, max_train: int, max_eval: int) -> TaskData:
        task = TASKS[name]
        train = _first(_split(task, data_root, task.train_file, "train"), max_train)
        evals = {s: _first(_split(task, data_root, f, hub), max_eval) for s, (f, hub) in task.eval_splits.items()}
        return TaskData(task, train, evals)

    def build_model(self, name: str, data: TaskData, seed: int, cache_dir=None, attention_maps: bool = False):
        """A classifier with the task's head; `attention_maps` forces eager attention without attention dropout."""
        return load_classifier(name, data.num_labels, data.regression, seed=seed, eager=attention_maps,
                               no_attention_dropout=attention_maps)

    def train_loader(self, tokenizer, data: TaskData, max_length: int, batch_size: int, seed: int, padding_side="right"):
        # padding_side is for causal LMs; encoder classifiers always pad on the right
        features = self.encode(tokenizer, data, data.train.examples, max_length)
        return train_loader(features, self.collator(tokenizer, data), batch_size, seed)

    def encode(self, tokenizer, data: TaskData, examples: list, max_length: int) -> list[dict]:
        """Token ids and label of each example: [CLS] a [SEP] b [SEP], truncated to max_length."""
        return encode(tokenizer, examples, max_length)

    def collator(self, tokenizer, data: TaskData):
        return Collator(tokenizer.pad_token_id, data.regression)

    def hold_out(self, data: TaskData, n: int) -> None:
        """Carve the validation slice (kdbench.validation) out of the training rows."""
        data.train, data.val = carve(data.train, n)

    def val_batches(self, tokenizer, data: TaskData, cfg) -> tuple[list[dict], list[int]]:
        features = self.encode(tokenizer, data, data.val.examples, cfg.train.max_length)
        return batches(features, self.collator(tokenizer, data), cfg.eval.batch_size)

    def val_metrics(self, data: TaskData, logits: torch.Tensor) -> dict[str, float]:
        """The task's official metrics on the validation slice (logits `(N, C)` in the slice's order)."""
        return compute(data.task.metrics, self.predictions(data.task, logits), [e.label for e in data.val.examples])

    def trivial(self, tokenizer, data: TaskData, cfg) -> dict[str, dict[str, float]]:
        """Predictors that learn nothing: the training set's majority class, or its mean score (regression:
        a constant has no correlation, so Pearson and Spearman are 0 by kdbench's convention)."""
        out = {}
        for split_name, split in data.evals.items():
            labels = [e.label for e in split.examples]
            if data.task.regression:
                constant = sum(e.label for e in data.train.examples) / len(data.train.examples)
                name, predictions = "constant mean", [constant] * len(labels)
            else:
                counts = Counter(e.label for e in data.train.examples)
                name, predictions = "majority class", [counts.most_common(1)[0][0]] * len(labels)
            out.setdefault(name, {}).update(self.score(data.task, split_name, predictions, labels))
        return out

    def predictions(self, task: GlueTask, logits: torch.Tensor) -> list:
        return logits.squeeze(-1).tolist() if task.regression else logits.argmax(-1).tolist()

    def score(self, task: GlueTask, split: str, predictions: list, labels: list) -> dict[str, float]:
        """Official metrics; with several eval splits (MNLI) each key gets the split name."""
        scores = compute(task.metrics, predictions, labels)  # the task's official metrics
        if len(task.eval_splits) > 1:
            scores = {on_split(k, split): v for k, v in scores.items()}
        return scores

    def evaluate(self, model, tokenizer, data: TaskData, cfg, device) -> tuple[dict, dict]:
        """Metrics and the predictions of every eval split."""
        collate = self.collator(tokenizer, data)
        scores, preds = {}, {}
        for split_name, split in data.evals.items():
            features = self.encode(tokenizer, data, split.examples, cfg.train.max_length)
            loader, order = eval_loader(features, collate, cfg.eval.batch_size)
            logits = predict(model, loader, device)
            unsorted = torch.empty_like(logits)
            unsorted[torch.tensor(order, dtype=torch.long)] = logits
            p = self.predictions(data.task, unsorted)
            scores.update(self.score(data.task, split_name, p, [e.label for e in split.examples]))
            preds[split_name] = p
        return scores, preds


    def diagnostics(self, student, teacher, tokenizer, data: TaskData, cfg, device) -> dict[str, float]:
        """Teacher agreement, KL to the teacher and the student's ECE on each eval split (classification only)."""
        if data.regression:  # one real-valued output: no distribution to compare
            return {}
        out = {}
        collate = self.collator(tokenizer, data)
        for split_name, split in data.evals.items():
            loader, order = eval_loader(self.encode(tokenizer, data, split.examples, cfg.train.max_length), collate,
                                        cfg.eval.batch_size)
            labels = [split.examples[i].label for i in order]
            scores = self.compare(data, predict(student, loader, device), predict(teacher, loader, device), labels)
            suffix = f"_{split_name}" if len(data.evals) > 1 else ""
            out.update({f"{k}{suffix}": v for k, v in scores.items()})
        return out

    def compare(self, data: TaskData, student_logits, teacher_logits, labels) -> dict[str, float]:
        """Teacher agreement, KL to the teacher and calibration of the student's outputs `(N, C)`."""
        from kdbench.diagnostics import classification

        return classification(student_logits, teacher_logits, labels)

    def examples(self, data: TaskData, predictions: dict) -> dict:
        """Per-example outputs for paired statistics: {split: {metrics, references, predictions}}."""
        out = {}
        for split_name, split in data.evals.items():
            names = list(self.score(data.task, split_name, predictions[split_name], [e.label for e in split.examples]))
            out[split_name] = {"metrics": names, "references": [e.label for e in split.examples],
                               "predictions": {"model": predictions[split_name]}}
        return out

