"""A task's score averages its metrics of one direction: BLEU beside CER is compared alone, not averaged with it."""

import json
from types import SimpleNamespace

import pytest

from kdbench import metrics
from kdbench.comparisons import Comparisons
from kdbench.leaderboard import run_average
from kdbench.metric_specs import score_metrics

REFS = ["ein Hund rennt im Park", "eine Frau liest ein Buch", "zwei Kinder spielen Fußball", "ein Mann fährt Rad"]
GOOD = ["ein Hund rennt im Park", "eine Frau liest ein Buch", "zwei Kinder spielen", "ein Mann fährt"]
POOR = ["ein Hund", "Frau liest", "Kinder spielen Ball", "Mann"]


def test_score_metrics_keep_the_first_metrics_direction():
    assert score_metrics(["bleu", "cer"]) == ["bleu"]
    assert score_metrics(["cer", "bleu"]) == ["cer"]
    assert score_metrics(["rouge1", "rouge2", "rougeL"]) == ["rouge1", "rouge2", "rougeL"]
    assert score_metrics(["rougeL", "rougeL_std"]) == ["rougeL"]
    assert score_metrics([]) == []


def test_the_average_of_a_bleu_cer_task_is_its_bleu():
    assert run_average({"multi30k": {"bleu": 12.5, "cer": 70.0}}, ["multi30k"]) == pytest.approx(12.5)
    assert run_average({"multi30k": {"cer": 70.0}}, ["multi30k"]) is None  # lower is better: no 0-100 average


def _rows(tmp_path, outputs: dict[str, list[list[str]]]):
    rows = []
    for method, per_seed in outputs.items():
        runs = []
        for seed, preds in enumerate(per_seed):
            name = f"{method}-{seed}"
            (tmp_path / f"{name}.examples.json").write_text(json.dumps(
                {"multi30k": {"test": {"metrics": ["bleu", "cer"], "references": REFS, "predictions": {"greedy": preds}}}}))
            runs.append({"seed": seed, "run_id": name, "_path": str(tmp_path / f"{name}.json"),
                         "examples_file": f"{name}.examples.json"})
        # the row's summaries name the task's metrics: BLEU first, its headline
        summaries = {"multi30k": {"bleu": (0.0, None, 3), "cer": (0.0, None, 3)}}
        rows.append(SimpleNamespace(method=method, runs=runs, tasks=summaries))
    return rows


def test_a_bleu_cer_tasks_difference_is_the_bleu_difference(tmp_path):
    rows = _rows(tmp_path, {"good": [GOOD] * 3, "poor": [POOR] * 3})
    comparisons = Comparisons(rows, ["multi30k"])
    delta = comparisons.pair("good", "poor", with_average=True)["multi30k"].delta
    assert delta == pytest.approx(metrics.bleu(GOOD, REFS) - metrics.bleu(POOR, REFS))
    assert comparisons.compared["multi30k"] == ["bleu"]  # the caption then says CER was not compared
    cer = comparisons.pair("good", "poor", with_average=False, metric="cer")["multi30k"].delta
    assert cer == pytest.approx(metrics.cer(GOOD, REFS) - metrics.cer(POOR, REFS)) and cer < 0
