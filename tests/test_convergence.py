"""The convergence rule on hand-made curves, the validation slice, and that scoring never moves the training."""

import json

import pytest

from kdbench.convergence import auto_eval_every, judge, learned, point_score
from kdbench.data.local import Split
from kdbench.errors import KdbenchError
from kdbench.validation import VAL_SEED, carve


def curve(*points):
    return [list(p) for p in points]


def test_a_flat_tail_is_converged_and_a_falling_one_is_not():
    flat = curve((0, 2.0, {}), (80, 1.000, {}), (90, 0.999, {}), (100, 0.995, {}))
    verdict = judge(flat)
    # best early loss 1.000, best late 0.995: a 0.5% drop, under the 2% tolerance
    assert verdict["converged"] is True and verdict["loss_drop"] == pytest.approx(0.005)
    annealed = curve((0, 2.0, {}), (80, 1.000, {}), (90, 0.99, {}), (100, 0.985, {}))
    assert judge(annealed)["converged"] is True  # 1.5%: what a linear decay's last fifth gives on its own
    assert judge(curve((0, 2.0, {}), (80, 1.0, {}), (100, 0.975, {})))["converged"] is False  # 2.5%
    falling = curve((0, 2.0, {}), (80, 1.0, {}), (90, 0.9, {}), (100, 0.85, {}))
    verdict = judge(falling)
    assert verdict["converged"] is False and verdict["loss_drop"] == pytest.approx(0.15)


def test_a_score_still_rising_keeps_a_curve_from_converging():
    points = curve((0, 0.7, {"accuracy": 50.0}), (80, 0.40, {"accuracy": 80.0}), (100, 0.40, {"accuracy": 82.0}))
    verdict = judge(points)
    # loss flat (0 drop) but the best score gains 2 points (> 1.0) in the last 20%
    assert verdict["score_gain"] == pytest.approx(2.0) and verdict["converged"] is False
    points[-1][2]["accuracy"] = 80.5
    assert judge(points)["converged"] is True


def test_a_student_that_never_leaves_its_start_converges_but_did_not_learn():
    # the minillm suite's kd[divergence=abkd] seed-0 curve (every answer empty): best 2.3% below step 0
    collapsed = curve((0, 16.31, {}), (5, 19.75, {}), (30, 15.96, {}), (40, 15.93, {}), (50, 16.05, {}))
    assert judge(collapsed)["converged"] is True and judge(collapsed)["learned"] is False
    assert learned(curve((0, 10.0, {}), (50, 9.0, {}))) is True  # exactly 10% below: learned
    assert learned(curve((0, 10.0, {}), (50, 9.01, {}))) is False
    # a pretrained encoder can start near its final loss and still learn its task: the score clause
    assert learned(curve((0, 0.70, {"accuracy": 70.0}), (50, 0.69, {"accuracy": 71.0}))) is True
    assert learned(curve((0, 0.70, {"accuracy": 70.0}), (50, 0.69, {"accuracy": 70.9}))) is False
    # without a step 0 (or a later point) there is nothing to compare with
    assert learned(curve((10, 1.0, {}), (20, 0.5, {}))) is None and learned(curve((0, 1.0, {}))) is None


def test_a_rising_validation_loss_counts_as_converged():
    points = curve((0, 1.0, {}), (50, 0.5, {}), (80, 0.55, {}), (100, 0.6, {}))
    verdict = judge(points)
    assert verdict["converged"] is True and verdict["loss_drop"] < 0


def test_too_short_a_curve_has_no_verdict():
    assert judge(curve((0, 1.0, {})))["converged"] is None


def test_point_score_is_the_mean_of_the_metrics():
    assert point_score([10, 0.5, {"pearson": 80.0, "spearman": 70.0}]) == 75.0
    assert point_score([10, 0.5, {}]) is None


def test_auto_eval_every_gives_ten_points():
    assert auto_eval_every(300, 0) == 30 and auto_eval_every(5, 0) == 1 and auto_eval_every(300, 7) == 7


def test_the_validation_slice_is_fixed_disjoint_and_keeps_order():
    split = Split(list(range(100)), "rows", "abc")
    train, val = carve(split, 10)
    again_train, again_val = carve(split, 10)
    assert val.examples == again_val.examples and len(val.examples) == 10 and len(train.examples) == 90
    assert set(train.examples).isdisjoint(val.examples) and train.examples == sorted(train.examples)
    assert train.sha256 != split.sha256 and val.sha256 != train.sha256
    assert VAL_SEED  # fixed in code, never the student's seed
    with pytest.raises(KdbenchError, match="would hold out all"):
        carve(split, 100)


def test_the_curve_is_in_the_record_and_does_not_change_the_student(tmp_path, data_root, cache_dir):
    """Two runs that differ only in eval_every end with bit-identical students: scoring draws no random numbers."""
    from kdbench.cli import main

    shas = []
    for every in (1, 3):
        out = tmp_path / f"every{every}"
        assert main(["run", "suite=glue_enc_tiny", "method=kd", f"eval_every={every}", f"data_dir={data_root}",
                     f"results_dir={out}", f"cache_dir={cache_dir}"]) == 0
        record = json.loads(next(out.glob("glue_enc_tiny/*.json")).read_text())
        points = record["curves"]["sst2"]["points"]
        steps = [p[0] for p in points]
        assert steps == ([0, 1, 2, 3, 4] if every == 1 else [0, 3, 4])
        assert all(set(p[2]) == {"accuracy"} and p[1] > 0 for p in points)
        assert record["curves"]["sst2"]["converged"] in (True, False) and "rule" in record["curves"]["sst2"]
        assert record["converged"] == record["curves"]["sst2"]["converged"]
        assert record["teacher_curves"]["sst2"]["points"][0][0] == 0
        assert record["data"]["sst2"]["validation"] == "16 rows held out of the training data"
        assert record["data"]["sst2"]["train_rows"] == 48
        shas.append(record["student_sha256"]["sst2"])
    assert shas[0] == shas[1]
