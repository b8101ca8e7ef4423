"""GLUE: the nine tasks on their dev sets, scored with the official metrics (0–100).

    kdbench run suite=glue method=rlkd tasks=[sst2,rte] data_dir=../shared/data

Version history (bump when a number can move): 1: first release; sentence
pairs are encoded as one [CLS] a [SEP] b [SEP] input, truncated to
train.max_length tokens.
Data: <data_root>/glue/<Task>/{train,dev}.tsv (GLUE TSV format), else the hub
dataset `nyu-mll/glue` when online. Labelled GLUE test sets are not public, so
scores are on dev sets, as in DistilBERT, MiniLM and TinyBERT's dev tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from kdbench import metrics
from kdbench.data.glue_tasks import TASKS, GlueTask
from kdbench.data.hub import hub_offline, hub_split
from kdbench.data.local import Split, glue_path, local_split
from kdbench.errors import KdbenchError
from kdbench.registry import SUITES, did_you_mean


@dataclass
class TaskData:
    task: GlueTask
    train: Split
    evals: dict  # split name -> Split


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


class GlueSuite:
    """The GLUE tasks: data loading and scoring. Training lives in the runner."""

    def task_names(self) -> list[str]:
        return list(TASKS)

    def check_tasks(self, tasks) -> None:
        for name in tasks:
            if name not in TASKS:
                raise KdbenchError(f"unknown GLUE task {name!r}; {did_you_mean(name, list(TASKS))}")

    def load(self, name: str, data_root: Path | None, max_train: int, max_eval: int) -> TaskData:
        task = TASKS[name]
        train = _first(_split(task, data_root, task.train_file, "train"), max_train)
        evals = {s: _first(_split(task, data_root, f, hub), max_eval) for s, (f, hub) in task.eval_splits.items()}
        return TaskData(task, train, evals)

    def predictions(self, task: GlueTask, logits: torch.Tensor) -> list:
        return logits.squeeze(-1).tolist() if task.regression else logits.argmax(-1).tolist()

    def score(self, task: GlueTask, split: str, predictions: list, labels: list) -> dict[str, float]:
        """Official metrics; with several eval splits (MNLI) each key gets the split name."""
        scores = metrics.glue(task.name, predictions, labels)
        if len(task.eval_splits) > 1:
            scores = {f"{k}_{split}": v for k, v in scores.items()}
        return scores


SUITES.add("glue", GlueSuite)
