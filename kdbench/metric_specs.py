"""Every metric kdbench reports, declared once: the function that computes it, its direction, its scale,
how a run's value is aggregated from examples, and the statistic its bootstrap resamples. The leaderboard, `kdbench check`, the plots and
the study read these declarations; nothing recovers a metric's meaning from its name.

A name that is not declared here has no direction: the leaderboard shows it without tests or an average,
and the gate names it as not gated. Names built from others (a task's split, a spread over decoding
seeds, a diagnostic's k) are declared here too, by the functions that build them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from kdbench import example_stats as ex
from kdbench import metrics


@dataclass(frozen=True)
class Resampling:
    prepare: Callable[[list, list], np.ndarray]  # (predictions, references) -> per-example statistics
    score: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (statistics, index matrix B x n) -> (B,) scores


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    percent: bool  # on a 0–100 scale: a task score the run average can hold, and the gate's tolerance is in points
    aggregate: str  # how a run's value comes from its examples: "mean", "corpus", "correlation", or "run"
    resample: Resampling | None = None  # None: no bootstrap over examples (no p-values)
    compared: bool = True  # False for spreads (x_std, acc_stderr): shown beside their metric, never tested or gated
    # (predictions, references) -> the value (kdbench.metrics); None where the suite computes it from the model
    # itself (perplexity, lm-eval's loglikelihoods, the diagnostics) or from other runs (spreads)
    compute: Callable[[list, list], float] | None = None

    @property
    def task_score(self) -> bool:
        """Counts toward a run's average over tasks: a higher-is-better score on 0–100."""
        return self.higher_is_better and self.percent and self.compared


METRICS: dict[str, Metric] = {}
DIAGNOSTIC_K = 5  # the k of the diagnostics mor@k and cr@k
SPLITS = ("matched", "mismatched")  # tasks scored on several dev splits (MNLI)


def declare(metric: Metric) -> Metric:
    if metric.name in METRICS and METRICS[metric.name] != metric:
        raise ValueError(f"metric {metric.name!r} is declared twice, differently")
    METRICS[metric.name] = metric
    return metric


def lookup(name: str) -> Metric | None:
    return METRICS.get(name)


def compute(names, predictions, references) -> dict[str, float]:
    """Each named metric of `predictions` against `references`, by its declared function."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    return {name: METRICS[name].compute(predictions, references) for name in names}


def is_spread(name: str) -> bool:
    """A declared spread (x_std, acc_stderr): shown beside its metric, never a metric of its own."""
    spec = lookup(name)
    return spec is not None and not spec.compared


def higher_is_better(name: str, default: bool = True) -> bool:
    spec = lookup(name)
    return default if spec is None else spec.higher_is_better


def score_metrics(names) -> list[str]:
    """The metrics a task's score averages: the compared ones in the direction of the first (all three ROUGEs;
    BLEU alone of a BLEU/CER task), so that a metric of the other direction beside the headline is shown and
    compared on its own, never averaged into it."""
    compared = [m for m in names if not is_spread(m)]
    return [m for m in compared if higher_is_better(m) == higher_is_better(compared[0])] if compared else []


def headline(names) -> list[str]:
    """The metrics that stand for a task (a status row's score, the leaderboard's Δ): its score metrics when
    they are 0-100 task scores that average (accuracy and F1, the ROUGEs), else the first alone (loss,
    perplexity and CER do not average: a char task's loss)."""
    names = score_metrics(names)
    if names and all((spec := lookup(m)) is not None and spec.task_score for m in names):
        return names
    return names[:1]


def on_split(name: str, split: str) -> str:
    """The name of `name` scored on one dev split of a task with several: the same metric."""
    derived = f"{name}_{split}"
    if derived not in METRICS:
        raise KeyError(f"{derived} is not declared: add {split!r} to kdbench.metric_specs.SPLITS")
    return derived


def spread(name: str) -> str:
    """The name of the standard deviation of `name` over decoding seeds."""
    derived = f"{name}_std"
    if derived not in METRICS:
        raise KeyError(f"{derived} is not declared (kdbench.metric_specs)")
    return derived


def _percent(name, higher, aggregate, resample, compute):
    return declare(Metric(name, higher, True, aggregate, resample, compute=compute))


def _rouge(key: str):
    return lambda predictions, references: metrics.rouge(predictions, references)[key]


for _base in (
    _percent("accuracy", True, "mean", Resampling(ex.prep_accuracy, ex.score_mean), metrics.accuracy),
    _percent("f1", True, "corpus", Resampling(ex.prep_confusion, ex.score_f1), metrics.f1),
    _percent("mcc", True, "corpus", Resampling(ex.prep_confusion, ex.score_mcc), metrics.mcc),
    _percent("pearson", True, "correlation", Resampling(ex.prep_pair, ex.score_pearson), metrics.pearson),
    _percent("spearman", True, "correlation", Resampling(ex.prep_pair, ex.score_spearman), metrics.spearman),
):
    for _split in SPLITS:
        declare(replace(_base, name=f"{_base.name}_{_split}"))

for _generated in (
    _percent("bleu", True, "corpus", Resampling(ex.prep_bleu, ex.score_bleu), metrics.bleu),
    _percent("cer", False, "corpus", Resampling(ex.prep_cer, ex.score_cer), metrics.cer),
    _percent("rouge1", True, "mean", Resampling(ex.prep_rouge("rouge1"), ex.score_mean), _rouge("rouge1")),
    _percent("rouge2", True, "mean", Resampling(ex.prep_rouge("rouge2"), ex.score_mean), _rouge("rouge2")),
    _percent("rougeL", True, "mean", Resampling(ex.prep_rouge("rougeL"), ex.score_mean), _rouge("rougeL")),
    _percent("gsm8k_accuracy", True, "mean", Resampling(ex.prep_gsm8k, ex.score_mean), metrics.gsm8k_accuracy),
):
    declare(replace(_generated, name=f"{_generated.name}_std", aggregate="run", resample=None, compared=False,
                    compute=None))

# language modelling: corpus exponentials and lm-eval's raw (0–1) accuracy, no resampling over examples
declare(Metric("perplexity", False, False, "corpus"))
declare(Metric("loss", False, False, "corpus"))
declare(Metric("word_perplexity", False, False, "corpus"))
declare(Metric("byte_perplexity", False, False, "corpus"))
declare(Metric("bits_per_byte", False, False, "corpus"))
declare(Metric("acc", True, False, "mean"))
declare(Metric("acc_stderr", False, False, "run", compared=False))

# diagnostics (kdbench.diagnostics): agreement with the teacher, calibration, divergence, top-k overlap
declare(Metric("agree@1", True, True, "mean"))
declare(Metric("ece", False, True, "run"))
declare(Metric("kl_teacher", False, False, "mean"))
declare(Metric(f"mor@{DIAGNOSTIC_K}", True, True, "mean"))
declare(Metric(f"cr@{DIAGNOSTIC_K}", True, True, "mean"))
