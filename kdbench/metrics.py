"""Pure metric functions, every score on a 0–100 scale.

Each metric declares its direction (higher is better for all GLUE metrics) so
that leaderboards and regression checks know which way is worse.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "mcc": True, "pearson": True, "spearman": True}


def accuracy(predictions, labels) -> float:
    p, y = np.asarray(predictions), np.asarray(labels)
    return 100.0 * float((p == y).mean())


def f1(predictions, labels) -> float:
    """Binary F1 of the positive class (label 1), as GLUE reports for MRPC and QQP."""
    return 100.0 * float(f1_score(labels, predictions, pos_label=1, zero_division=0))


def mcc(predictions, labels) -> float:
    """Matthews correlation coefficient (CoLA); 0 when a side is constant."""
    return 100.0 * float(matthews_corrcoef(labels, predictions))


def _correlation(fn, predictions, labels) -> float:
    p, y = np.asarray(predictions, dtype=float), np.asarray(labels, dtype=float)
    if np.ptp(p) == 0 or np.ptp(y) == 0:
        return 0.0  # undefined for a constant side; a constant predictor earns no credit
    value = float(fn(p, y)[0])
    return 100.0 * (0.0 if math.isnan(value) else value)


def pearson(predictions, labels) -> float:
    return _correlation(stats.pearsonr, predictions, labels)


def spearman(predictions, labels) -> float:
    return _correlation(stats.spearmanr, predictions, labels)


GLUE_METRICS = {"accuracy": accuracy, "f1": f1, "mcc": mcc, "pearson": pearson, "spearman": spearman}


def glue(task: str, predictions, labels) -> dict[str, float]:
    """The official GLUE metrics of `task` (e.g. "mrpc" → accuracy and F1), 0–100."""
    from kdbench.data.glue_tasks import TASKS

    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    return {name: GLUE_METRICS[name](predictions, labels) for name in TASKS[task].metrics}
