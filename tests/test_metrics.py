"""GLUE metrics against hand-checked cases (0–100 scale)."""

import math

import pytest

from kdbench import metrics

CASES = [
    # 3 of 4 right
    (metrics.accuracy, [1, 0, 1, 1], [1, 0, 0, 1], 75.0),
    # TP = 2, FP = 1, FN = 0: P = 2/3, R = 1, F1 = 2·(2/3)/(5/3) = 0.8
    (metrics.f1, [1, 0, 1, 1], [1, 0, 0, 1], 80.0),
    # TP = 2, TN = 1, FP = 1, FN = 0: MCC = (2·1 − 1·0)/√(3·2·2·1) = 2/√12 = 0.57735
    (metrics.mcc, [1, 0, 1, 1], [1, 0, 0, 1], 100 * 2 / math.sqrt(12)),
    # perfect linear relation
    (metrics.pearson, [1.0, 2.0, 3.0], [2.0, 4.0, 6.0], 100.0),
    # ranks (1, 2, 3) vs (1, 3, 2): ρ = 1 − 6·(0 + 1 + 1)/(3·8) = 0.5
    (metrics.spearman, [1.0, 2.0, 3.0], [1.0, 3.0, 2.0], 50.0),
    # x = (1, 2, 3), y = (1, 3, 2): deviations (−1, 0, 1), (−1, 1, 0); Σdx·dy = 1, Σdx² = Σdy² = 2 → r = 0.5
    (metrics.pearson, [1.0, 2.0, 3.0], [1.0, 3.0, 2.0], 50.0),
]


@pytest.mark.parametrize("fn,pred,gold,expected", CASES)
def test_metric_hand_cases(fn, pred, gold, expected):
    assert fn(pred, gold) == pytest.approx(expected, abs=1e-6)


def test_correlation_with_constant_predictions_is_zero_not_nan():
    assert metrics.pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0


def test_glue_reports_each_tasks_official_metrics():
    from kdbench.data.glue_tasks import TASKS
    from kdbench.metric_specs import compute

    assert set(compute(TASKS["mrpc"].metrics, [1, 0], [1, 1])) == {"accuracy", "f1"}
    assert set(compute(TASKS["stsb"].metrics, [1.0, 2.0, 3.0], [1.0, 2.0, 3.5])) == {"pearson", "spearman"}
    assert set(compute(TASKS["cola"].metrics, [1, 0], [1, 0])) == {"mcc"}
    with pytest.raises(ValueError, match="predictions"):
        compute(TASKS["sst2"].metrics, [1], [1, 0])
