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
    """Open the run in each tracker of `cfg.log_with` (main process; accelerate skips the others)."""
    if cfg.log_with:
        accelerator.init_trackers(run_id, config=hyperparameters(config))


def log(accelerator, values: dict, step: int) -> None:
    """Values at a step to every open tracker; nothing when none is open."""
    if accelerator.trackers:
        accelerator.log({k: float(v) for k, v in values.items()}, step=step)


def finish(accelerator) -> None:
    if accelerator.trackers:
        accelerator.end_training()
