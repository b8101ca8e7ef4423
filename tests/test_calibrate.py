"""`kdbench calibrate`: the plateau rule on hand-made curves, and one tiny end-to-end calibration."""

import json

import pytest

from kdbench.calibrate import calibrate, plateau_step, round_budget
from kdbench.errors import KdbenchError
from kdbench.results import load_records


def test_the_plateau_is_the_first_step_within_tolerance_of_the_best():
    scored = [[0, 0.7, {"accuracy": 50.0}], [100, 0.4, {"accuracy": 80.0}], [200, 0.35, {"accuracy": 85.5}],
              [300, 0.36, {"accuracy": 86.0}], [400, 0.37, {"accuracy": 85.2}]]
    assert plateau_step(scored) == (200, 86.0, "score")  # 85.5 >= 86.0 - 1.0
    losses = [[0, 4.0, {}], [100, 2.0, {}], [200, 1.61, {}], [300, 1.59, {}], [400, 1.585, {}]]
    assert plateau_step(losses) == (200, 1.585, "loss")  # 1.61 <= 1.585 * 1.02 = 1.6167
    losses[2][1] = 1.63
    assert plateau_step(losses)[0] == 300  # 1.63 > 1.6167
    with pytest.raises(KdbenchError):
        plateau_step(losses[:1])


def test_budgets_round_up():
    assert [round_budget(s) for s in (0, 7, 40, 101, 2000, 2001)] == [10, 10, 40, 200, 2000, 2100]


def test_calibrate_char_tiny_end_to_end(tmp_path, data_root, cache_dir):
    logs = []
    summary = calibrate({"suite": "char_tiny", "lrs": "[1e-3,3e-3]", "steps": "20", "teacher_steps": "20",
                         "data_dir": str(data_root), "results_dir": str(tmp_path), "cache_dir": str(cache_dir)},
                        log=logs.append)
    written = json.loads((tmp_path / "calibration-char_tiny-20-steps-teacher-20.json").read_text())
    assert written["student_choice"] == summary["student_choice"]
    choice = summary["student_choice"]
    # the budget is the calibration length itself; the plateau step is reported beside it
    assert choice["lr"] in (1e-3, 3e-3) and choice["steps"] == 20 and 10 <= choice["plateau_step"] <= 20
    assert choice["converged"] == all(r["converged"] for r in summary["student"] if r["lr"] == choice["lr"])
    assert len(summary["student"]) == 2 and all(len(r["points"]) == 21 for r in summary["student"])
    assert summary["teacher_choice"]["steps"] == 20 and len(summary["teacher"]) == 1
    assert summary["teacher_choice"]["plateau_step"] <= 20 and "converged" in summary["teacher_choice"]
    assert summary["teacher_choice"]["score_stopped"] is False  # language modelling has no score: the full rule only
    assert any("max_steps =" in line for line in logs)
    # a still-improving student gets a labelled extrapolation per task, never a silent budget
    assert ("student_extrapolation" in summary) == (not choice["converged"])
    for result in summary.get("student_extrapolation", {}).values():
        assert result["label"].startswith("extrapolated") and any("extrapolated" in line for line in logs)
    again = []  # a second call reuses every record: nothing trains
    calibrate({"suite": "char_tiny", "lrs": "[1e-3,3e-3]", "steps": "20", "teacher_steps": "20",
               "data_dir": str(data_root), "results_dir": str(tmp_path), "cache_dir": str(cache_dir)}, log=again.append)
    assert sum("reusing" in line for line in again) == 3 and not any("training student" in line for line in again)


def test_steps_zero_calibrates_the_teacher_only(tmp_path, data_root, cache_dir):
    logs = []
    summary = calibrate({"suite": "char_tiny", "steps": "0", "teacher_steps": "20", "data_dir": str(data_root),
                         "results_dir": str(tmp_path), "cache_dir": str(cache_dir)}, log=logs.append)
    written = json.loads((tmp_path / "calibration-char_tiny-0-steps-teacher-20.json").read_text())
    assert written["teacher_choice"] == summary["teacher_choice"] and summary["teacher_choice"]["steps"] == 20
    assert summary["student"] == [] and "student_choice" not in summary  # no student trained, none chosen
    assert len(summary["teacher"]) == 1 and len(summary["teacher"][0]["points"]) == 21
    assert any("[teacher_train]" in line for line in logs) and not any("[train]" in line for line in logs)
    records, _ = load_records(tmp_path, "char_tiny")  # only the teacher run, with its 1-step student
    assert [r["config"]["train"]["max_steps"] for r in records] == [1]


@pytest.mark.parametrize("steps, teacher_steps, message", [("0", "0", "nothing to calibrate"),
                                                           ("5", "0", "at least points=20")])
def test_calibrate_refuses_budgets_it_cannot_use(steps, teacher_steps, message):
    with pytest.raises(KdbenchError, match=message):
        calibrate({"suite": "char_tiny", "steps": steps, "teacher_steps": teacher_steps})
