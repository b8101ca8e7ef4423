"""Metric declarations (kdbench.metric_specs): one place for direction, scale, aggregation and resampling."""
import numpy as np
import pytest

from kdbench import metrics
from kdbench.leaderboard import run_average
from kdbench.metric_specs import (METRICS, Metric, compute, declare, higher_is_better, is_spread, lookup, on_split,
                                  spread)
from kdbench.stats import resampled_scores


def test_gsm8k_accuracy_is_declared_resampled_and_averaged():
    # the bug this fixes: the name was parsed to "gsm8k", which had no direction, no average and no p-values
    spec = lookup("gsm8k_accuracy")
    assert spec.higher_is_better and spec.percent and spec.resample is not None
    preds, refs = ["so 12 apples", "#### 7", "no idea"], ["#### 12", "#### 8", "#### 3"]
    full = metrics.gsm8k_accuracy(preds, refs)
    assert resampled_scores("gsm8k_accuracy", [preds], refs, np.arange(3)[None, :])[0] == pytest.approx(full)
    assert resampled_scores("gsm8k_accuracy", [preds], refs, np.array([[0, 0, 1]]))[0] == pytest.approx(200 / 3)
    assert run_average({"gsm8k": {"gsm8k_accuracy": 40.0, "gsm8k_accuracy_std": 3.0}}, ["gsm8k"]) == 40.0


def test_directions_and_scales_come_from_declarations_not_names():
    assert not higher_is_better("cer") and not higher_is_better("kl_teacher") and higher_is_better("agree@1")
    assert lookup("cer").percent and not lookup("perplexity").percent and not lookup("acc").percent
    assert lookup("not_a_metric") is None and higher_is_better("not_a_metric", default=False) is False


def test_split_and_spread_names_are_declared_by_the_functions_that_build_them():
    assert on_split("accuracy", "matched") == "accuracy_matched" and lookup("accuracy_matched").resample
    assert spread("rougeL") == "rougeL_std" and is_spread("rougeL_std") and not is_spread("rougeL")
    with pytest.raises(KeyError, match="SPLITS"):
        on_split("accuracy", "validation")
    with pytest.raises(KeyError):
        spread("perplexity")


def test_a_metric_is_declared_once():
    assert declare(METRICS["bleu"]) is METRICS["bleu"]  # the same declaration again is harmless
    with pytest.raises(ValueError, match="declared twice"):
        declare(Metric("bleu", False, True, "corpus"))


def test_the_run_average_holds_only_task_scores():
    assert run_average({"a": {"accuracy": 80.0}, "b": {"pearson": 60.0, "spearman": 70.0}}, ["a", "b"]) == 72.5
    assert run_average({"a": {"accuracy": 80.0}, "b": {"cer": 20.0}}, ["a", "b"]) is None  # lower is better
    assert run_average({"a": {"acc": 0.8}}, ["a"]) is None  # lm-eval's 0–1 accuracy is not on the 0–100 scale
    assert run_average({"a": {"mystery": 80.0}}, ["a"]) is None  # undeclared: no direction


def test_each_declared_metric_names_the_function_that_computes_it():
    preds, refs = ["the cat sat", "a dog"], ["the cat sat down", "a dog ran"]
    assert lookup("bleu").compute(preds, refs) == metrics.bleu(preds, refs)
    assert {k: lookup(k).compute(preds, refs) for k in ("rouge1", "rouge2", "rougeL")} == metrics.rouge(preds, refs)
    assert lookup("accuracy_matched").compute([1, 0], [1, 1]) == 50.0  # a split's metric is the same function
    assert compute(("accuracy", "f1"), [1, 0, 1, 1], [1, 0, 0, 1]) == {"accuracy": 75.0, "f1": 80.0}
    # computed by the suite from the model, or over decoding seeds: no function of (predictions, references)
    assert lookup("perplexity").compute is None and lookup("bleu_std").compute is None
