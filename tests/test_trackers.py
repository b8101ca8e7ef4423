"""Experiment trackers (kdbench.trackers): a run logs its losses, learning rate, validation curve and final scores
to TensorBoard (read back from the event files here); unknown or missing trackers stop the run in one line."""
import json

import pytest

from kdbench.cli import main


def _args(tmp_path, cache_dir, data_root, *extra):
    return ["run", "suite=glue_tiny", "method=kd", f"data_dir={data_root}", f"results_dir={tmp_path / 'results'}",
            f"cache_dir={cache_dir}", "save_student=false", *extra]


def test_tensorboard_shows_the_run(tmp_path, cache_dir, data_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # a cache of its own, so that the teacher is fine-tuned (and logged) here whatever ran before
    assert main(_args(tmp_path, tmp_path / "cache", data_root, "log_with=[tensorboard]", "eval_every=2")) == 0
    (path,) = (tmp_path / "results" / "glue_tiny").glob("kd-*.json")
    record = json.loads(path.read_text())
    runs = [p.parent for p in (tmp_path / "results" / "glue_tiny" / "trackers").rglob("events.out.tfevents.*")]
    assert runs and all(record["run_id"] in str(p) for p in runs)
    scalars = {}
    for folder in set(runs):
        events = EventAccumulator(str(folder))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars[tag] = [(e.step, e.value) for e in events.Scalars(tag)]
    # the training loss at each logged step, as the record's loss curve has it
    assert [s for s, _ in scalars["kd/sst2/loss"]] == [step for step, _, _ in record["loss_curves"]["sst2"]]
    assert [v for _, v in scalars["kd/sst2/loss"]] == pytest.approx(
        [loss for _, loss, _ in record["loss_curves"]["sst2"]], rel=1e-5)
    assert "kd/sst2/kd" in scalars and "kd/sst2/lr" in scalars and "kd/sst2/examples_per_s" in scalars
    curve = record["curves"]["sst2"]["points"]
    assert [v for _, v in scalars["kd/sst2/val_loss"]] == pytest.approx([p[1] for p in curve], rel=1e-5)
    assert scalars["kd/sst2/final/accuracy"][0][1] == pytest.approx(record["metrics"]["sst2"]["accuracy"])
    assert "teacher/sst2/loss" in scalars and "teacher/sst2/val_loss" in scalars  # the teacher's fine-tuning


def test_an_unknown_or_missing_tracker_is_one_line_before_anything_loads(tmp_path, cache_dir, data_root, capsys,
                                                                        monkeypatch):
    assert main(_args(tmp_path, cache_dir, data_root, "log_with=[tensorbored]")) == 2
    err = capsys.readouterr().err
    assert "unknown tracker 'tensorbored'" in err and "tensorboard" in err and len(err.strip().splitlines()) == 1
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    assert main(_args(tmp_path, cache_dir, data_root, "log_with=[wandb]")) == 2
    err = capsys.readouterr().err
    assert "pip install wandb" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_wandb_offline_and_mlflow_local_get_the_final_scores(tmp_path, cache_dir, data_root, monkeypatch):
    pytest.importorskip("wandb")
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as kdbench sets it; monkeypatch restores it
    assert main(_args(tmp_path, cache_dir, data_root, "log_with=[wandb,mlflow]")) == 0
    (path,) = (tmp_path / "results" / "glue_tiny").glob("kd-*.json")
    record = json.loads(path.read_text())
    accuracy = record["metrics"]["sst2"]["accuracy"]
    trackers = tmp_path / "results" / "glue_tiny" / "trackers"
    # W&B's offline run file, beside the records (its records are protobuf; wandb 0.31 ships no reader for them,
    # so this checks that the run, the loss and the final score were written into it)
    (run_file,) = trackers.glob("wandb/offline-run-*/run-*.wandb")
    data = run_file.read_bytes()
    assert record["run_id"].encode() in data and b"kd/sst2/loss" in data and b"kd/sst2/final/accuracy" in data
    client = mlflow.tracking.MlflowClient(tracking_uri=(trackers / "mlruns").resolve().as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "kdbench-glue_tiny"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == record["run_id"]
    assert run.data.metrics["kd/sst2/final/accuracy"] == pytest.approx(accuracy)
    losses = client.get_metric_history(run.info.run_id, "kd/sst2/loss")
    assert [m.step for m in losses] == [step for step, _, _ in record["loss_curves"]["sst2"]]
