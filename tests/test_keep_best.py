"""train.keep=best: training hands on the weights of the validation curve's best point, says which step in
the record, carries the best point through a checkpoint, and leaves cached teachers' keys alone."""

import json

import pytest
import torch
from torch.utils.data import DataLoader

from kdbench.config import TeacherTrainConfig, TrainConfig
from kdbench.convergence import better_point
from kdbench.data.batching import Collator
from kdbench.distiller import Distiller
from kdbench.errors import KdbenchError
from kdbench.leaderboard import group_key
from kdbench.registry import METHODS
from kdbench.runner import TrainState, make_accelerator, train
from kdbench.teacher.weights import weights_key_parts
from tests.test_runner import ROWS, tiny_bert


def test_a_higher_score_wins_else_a_lower_loss_and_ties_keep_the_earlier_point():
    assert better_point([10, 0.5, {"accuracy": 70.0}], None)
    assert better_point([10, 0.9, {"accuracy": 71.0}], [5, 0.1, {"accuracy": 70.0}])  # the score decides, not the loss
    assert not better_point([10, 0.1, {"accuracy": 70.0}], [5, 0.9, {"accuracy": 70.0}])  # tie: the earlier stays
    assert better_point([10, 0.4, {}], [5, 0.5, {}]) and not better_point([10, 0.5, {}], [5, 0.5, {}])
    # two metrics (MRPC accuracy and F1) are judged by their mean
    assert better_point([10, 0.5, {"accuracy": 60.0, "f1": 90.0}], [5, 0.5, {"accuracy": 74.0, "f1": 75.0}])


def _train(keep: str, scores: list[float]):
    """Six steps, validated every step; the i-th validation returns scores[i]. Returns (model, stats, snapshots)."""
    model = tiny_bert()
    loader = DataLoader(ROWS, batch_size=4, shuffle=False, collate_fn=Collator(0, regression=False))
    cfg = TrainConfig(max_steps=len(scores) - 1, batch_size=4, lr=1e-2, warmup_ratio=0.0, log_every=1, keep=keep)
    snapshots = []

    def validate(inner):
        snapshots.append({k: v.clone() for k, v in inner.state_dict().items()})
        return 1.0, {"accuracy": scores[len(snapshots) - 1]}

    none = METHODS.get("none")
    stats = train(model, Distiller(none, none.make_params({})), loader, cfg, make_accelerator("cpu"),
                  validate=validate, eval_every=1)
    return model, stats, snapshots


def _equal(model, weights) -> bool:
    return all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_keep_best_hands_on_the_best_points_weights_and_keep_last_the_last():
    scores = [50.0, 60.0, 80.0, 70.0, 80.0, 65.0]  # steps 0..5; the best (80) first at step 2
    best, stats, snapshots = _train("best", scores)
    assert stats.kept_step == 2 and _equal(best, snapshots[2]) and not _equal(best, snapshots[-1])
    assert [p[0] for p in stats.curve] == [0, 1, 2, 3, 4, 5]  # the curve itself is the whole training's
    last, last_stats, last_snapshots = _train("last", scores)
    assert last_stats.kept_step is None and _equal(last, last_snapshots[-1])
    assert _equal(last, snapshots[-1])  # keeping a copy does not change the training itself


def test_the_best_point_survives_a_checkpoint():
    state = TrainState()
    state.best = {"point": [3, 0.2, {"accuracy": 90.0}], "model": {"w": torch.arange(3.0)}}
    again = TrainState()
    again.restore(state.saved(1.0))
    assert again.best["point"] == [3, 0.2, {"accuracy": 90.0}] and torch.equal(again.best["model"]["w"], torch.arange(3.0))
    fresh = TrainState()
    fresh.restore(TrainState().saved(1.0))
    assert fresh.best is None


def test_keep_best_without_a_validation_curve_and_an_unknown_keep_are_errors():
    with pytest.raises(KdbenchError, match="keep must be one of last, best"):
        TrainConfig(keep="middle")
    model = tiny_bert()
    loader = DataLoader(ROWS, batch_size=4, collate_fn=Collator(0, regression=False))
    none = METHODS.get("none")
    with pytest.raises(KdbenchError, match="has no validation curve"):
        train(model, Distiller(none, none.make_params({})), loader, TrainConfig(max_steps=1, batch_size=4, keep="best"),
              make_accelerator("cpu"))


class _Data:
    name, num_labels = "sst2", 2

    class train:  # noqa: N801 - stands in for a split object
        sha256 = "abc"


class _Cfg:
    device, precision = "cpu", "auto"

    class data:  # noqa: N801
        max_train_examples, val_examples = 0, 256

    def __init__(self, keep):
        self.teacher_train = TeacherTrainConfig(keep=keep)


def test_a_teacher_cached_before_keep_existed_keeps_its_key_and_keep_best_is_a_new_one():
    before = weights_key_parts(_Cfg("last"), {"name": "t"}, _Data)
    assert "keep" not in before["teacher_train"]
    assert weights_key_parts(_Cfg("best"), {"name": "t"}, _Data)["teacher_train"]["keep"] == "best"


def test_the_kept_step_is_in_the_record_and_the_leaderboard_keeps_such_students_apart(tmp_path, data_root, cache_dir):
    from kdbench.cli import main

    out = tmp_path / "best"
    assert main(["run", "suite=glue_enc_tiny", "method=none", "eval_every=1", "train.keep=best",
                 f"data_dir={data_root}", f"results_dir={out}", f"cache_dir={cache_dir}"]) == 0
    record = json.loads(next(out.glob("glue_enc_tiny/*.json")).read_text())
    curve = record["curves"]["sst2"]
    best = None
    for point in curve["points"]:
        best = point if better_point(point, best) else best
    assert curve["kept_step"] == best[0]
    last = json.loads(json.dumps(record))
    last["config"]["train"]["keep"] = "last"
    assert group_key(record) != group_key(last)
    assert "best validation point kept" in group_key(record)[4]
