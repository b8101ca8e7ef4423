"""Experiment trackers through accelerate's tracker API: TensorBoard, Weights & Biases, MLflow, trackio.

    kdbench run suite=glue method=kd log_with=[tensorboard]   # events in results/glue/trackers/<run id>/
    tensorboard --logdir results/glue/trackers

What is logged, under `<method>/<task>/` (a teacher's fine-tuning under `teacher/<task>/`): the training loss
and its parts, the learning rate and examples per second every `train.log_every` steps; the validation loss
(`val_loss`) and scores (`val_<metric>`) at each point of the learning curve; the final scores
(`final/<metric>`) at the last step. The
run's configuration goes in as the tracker's hyperparameters. The record stays the source of truth: a
tracker is a view of it, so `log_with` never changes a run's configuration hash.
"""

from __future__ import annotations

import os
from pathlib import Path

from kdbench.errors import KdbenchError

# name -> (accelerate's availability check, what to install)
TRACKERS = {
    "tensorboard": ("is_tensorboard_available", "pip install tensorboard"),
    "wandb": ("is_wandb_available", "pip install wandb"),
    "mlflow": ("is_mlflow_available", "pip install mlflow"),
    "trackio": ("is_trackio_available", "pip install trackio"),
}


def check_trackers(names: tuple[str, ...]) -> None:
    """An unknown tracker, or one whose package is missing, stops the run before anything loads."""
    import accelerate.utils

    from kdbench.registry import did_you_mean

    for name in names:
        if name not in TRACKERS:
            raise KdbenchError(f"unknown tracker {name!r} in log_with; {did_you_mean(name, list(TRACKERS))}")
        available, install = TRACKERS[name]
        if not getattr(accelerate.utils, available)():
            raise KdbenchError(f"log_with={name} needs its package, which is not installed: {install}")


def trackers_folder(cfg) -> Path:
    return Path(cfg.results_dir) / cfg.suite / "trackers"


def hyperparameters(config: dict, prefix: str = "") -> dict:
    """The resolved config flattened to the scalars trackers accept (lists and None as text)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(hyperparameters(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def start(accelerator, cfg, run_id: str, config: dict) -> None:
    """Open the run in each tracker of `cfg.log_with` (main process; accelerate skips the others): one
    project per suite (`kdbench-<suite>`: a W&B project, an MLflow experiment), one run per record, named by
    its run id. TensorBoard writes to <results_dir>/<suite>/trackers/<run id>/; W&B keeps its files there
    too; MLflow logs to MLFLOW_TRACKING_URI, by default a file store in <results_dir>/<suite>/trackers/mlruns."""
    if not cfg.log_with:
        return
    folder = trackers_folder(cfg)
    if "mlflow" in cfg.log_with and not os.environ.get("MLFLOW_TRACKING_URI"):
        import mlflow

        # no server given: MLflow's local file store beside the records (MLflow 3 keeps it behind an opt-in;
        # a database store needs sqlalchemy, which mlflow-skinny does not bring)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((folder / "mlruns").resolve().as_uri())
    folder.mkdir(parents=True, exist_ok=True)
    accelerator.project_configuration.logging_dir = str(folder / run_id)  # TensorBoard: one folder per run
    accelerator.init_trackers(f"kdbench-{cfg.suite}", config=hyperparameters(config),
                              init_kwargs={"wandb": {"name": run_id, "dir": str(folder)},
                                           "mlflow": {"run_name": run_id}})


def log(accelerator, values: dict, step: int) -> None:
    """Values at a step to every open tracker; nothing when none is open."""
    if accelerator.trackers:
        accelerator.log({k: float(v) for k, v in values.items()}, step=step)


def finish(accelerator) -> None:
    if accelerator.trackers:
        accelerator.end_training()
