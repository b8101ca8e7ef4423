"""`kdbench calibrate`: choose a suite's training budgets from validation curves, reproducibly.

    kdbench calibrate suite=char lrs=[1e-3,2e-3,5e-3] steps=4000 teacher_steps=6000 data_dir=../shared/data

The procedure (README "Calibrated budgets"), on the validation slice carved from the training data (never
the dev/test split the leaderboard reports):

1. Teacher: train (or fine-tune) it once for `teacher_steps` at the suite's teacher learning rate, or at
   each of `teacher_lrs`, with 20 validation points, and keep the learning rate with the best validation
   result. When that curve passes the convergence rule (kdbench.convergence: it stopped improving over
   its last 20%), the teacher's budget is `teacher_steps` itself: that teacher is already trained and
   cached, and the sweep reuses it. Where the task has a score, a teacher whose validation *score* stopped
   improving (gain < 1 point over its last 20%) is accepted too, as `score_stopped`, even while its
   validation loss still falls: the teacher is trained "until its validation score stops improving"
   (issue "Students that learn"); the summary keeps the loss drop beside it. Otherwise the output says
   to raise `teacher_steps`. The first step on the plateau (below) is reported too.
2. Student: train `method=none` for `steps` at each learning rate in `lrs` (seed `seed`), 20 validation
   points each. steps=0 skips it (a teacher-only calibration): `none` never reads the teacher, so where the
   student starts from pretrained weights (student_init=pretrained) a new teacher leaves the student budget
   calibrated before as it was, and re-training that student would only reproduce its curve. The learning
   rate is the one with the best validation result. As for the teacher, when that curve passes the
   convergence rule the student's budget is `steps` itself (every method then runs at this one budget);
   otherwise the output says to raise `steps`. Calibrating at the length the sweep will train keeps the
   learning-rate schedule the same: a shorter run decays sooner and is a different curve.

Plateau (reported, not chosen): a point is on it when its validation score is within 1 point of the
curve's best (tasks with a score: classification, regression), or its validation loss within the loss
tolerance of the curve's lowest (language modelling); the tolerances of kdbench.convergence. The first
such step, rounded up to a multiple of 100 (of 10 below 100), tells how much of the budget the curve
needed to come within tolerance of its best.

When the chosen curve is still improving, the summary adds a labelled extrapolation per task
(kdbench.extrapolate): the run length at which a power law fitted to its validation loss would pass the
rule, and the CPU hours that costs at the run's measured training rate. It is what a suite's
`budget_bound` text quotes; it is never a measured budget.

Writes <results_dir>/calibration-<suite>-<steps>-steps-teacher-<teacher_steps>.json (every curve, the
choices) and prints the TOML lines. Each run is an ordinary record under <results_dir>/<suite>/; re-running
the same command reuses the complete ones, so a stopped calibration resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from kdbench.config import parse_list, resolve
from kdbench.convergence import LOSS_TOLERANCE, SCORE_TOLERANCE, point_score
from kdbench.errors import KdbenchError
from kdbench.extrapolate import describe, extrapolate
from kdbench.results import config_hash, load_records

CALIBRATE_KEYS = ("lrs", "steps", "teacher_steps", "teacher_lrs", "points")


def plateau_step(points: list) -> tuple[int, float, str]:
    """(first step on the plateau, the curve's best value, what was compared: "score" or "loss")."""
    if len(points) < 2:
        raise KdbenchError("a calibration curve needs at least two points")
    if all(point_score(p) is not None for p in points):
        best = max(point_score(p) for p in points)
        return next(p[0] for p in points if point_score(p) >= best - SCORE_TOLERANCE), best, "score"
    best = min(p[1] for p in points)
    step = next(p[0] for p in points if p[1] <= best * (1 + LOSS_TOLERANCE) + 1e-12)
    return step, best, "loss"


def round_budget(step: int) -> int:
    """Up to a multiple of 100 (10 below 100); at least 10."""
    unit = 100 if step >= 100 else 10
    return max(unit, math.ceil(step / unit) * unit)


def _complete_records(results_dir: Path, suite: str) -> dict[str, dict]:
    """config hash -> the newest complete record under results_dir/suite: a stopped calibration resumes."""
    records, _ = load_records(results_dir, suite)
    return {config_hash(r["config"]): r for r in sorted(records, key=lambda r: r["created_at"])
            if r.get("status") == "complete"}


def seconds_per_step(record: dict, task: str) -> float | None:
    """Training seconds per step of one task in a record (validation passes excluded)."""
    rate = (record.get("throughput") or {}).get(task, {}).get("train_examples_per_s")
    batch = record["config"]["train"]["batch_size"] * record["config"]["train"].get("grad_accum", 1)
    return batch / rate if rate else None


def _extrapolations(rows: list, results_dir: Path, suite: str, log) -> dict:
    """task -> the labelled extrapolation of its still-improving curve (kdbench.extrapolate)."""
    records, _ = load_records(results_dir, suite)
    by_id = {r["run_id"]: r for r in records}
    out = {}
    for row in rows:
        record = by_id.get(row["record"])
        result = extrapolate(row["points"], seconds_per_step(record, row["task"]) if record else None, row)
        out[row["task"]] = result
        log(f"calibrate: [{row['task']}] {describe(result)}")
    return out


def _better(a: float, b: float, kind: str) -> bool:
    return a > b if kind == "score" else a < b


def calibrate(overrides: dict[str, str], log=print) -> dict:
    from kdbench.experiment import run

    rest = {k: v for k, v in overrides.items() if k not in CALIBRATE_KEYS}
    if "method" in rest:
        raise KdbenchError("calibrate trains method=none (the budget every method then shares); drop method=")
    base = resolve({**rest, "method": "none"})
    lrs = [float(x) for x in parse_list(overrides.get("lrs", f"[{base.train.lr}]"), "lrs")]
    steps = int(overrides.get("steps", base.train.max_steps * 4))
    teacher_steps = int(overrides.get("teacher_steps", base.teacher_train.max_steps * 2))
    teacher_lrs = [float(x) for x in parse_list(overrides.get("teacher_lrs", f"[{base.teacher_train.lr}]"),
                                                "teacher_lrs")]
    points = int(overrides.get("points", 20))
    if not steps and not teacher_steps:
        raise KdbenchError("steps=0 and teacher_steps=0 leave nothing to calibrate; give steps=N, teacher_steps=N or both")
    if (steps and steps < points) or (teacher_steps and teacher_steps < points):
        raise KdbenchError(f"steps and teacher_steps must be 0 or at least points={points}")
    results_dir = Path(base.results_dir)
    summary = {"suite": base.suite, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "rule": __doc__.split("Plateau (reported, not chosen): ", 1)[1].split("\n\n", 1)[0].replace("\n", " "),
               "teacher": [], "student": []}

    def one(extra: dict) -> dict:
        """The record of one calibration run: an earlier complete one with the same config, or a new run."""
        cfg = resolve({"save_student": "false", **rest, "method": "none", **extra})  # calibration students: not kept
        done = _complete_records(results_dir, cfg.suite)
        if config_hash(cfg.to_dict()) in done:
            log(f"calibrate: reusing {done[config_hash(cfg.to_dict())]['run_id']} (same config)")
            return done[config_hash(cfg.to_dict())]
        return json.loads(Path(run(cfg, log=log)).read_text())

    teacher_choice = {"steps": 0, "lr": base.teacher_train.lr}
    if teacher_steps:
        best = None
        for lr in teacher_lrs:
            log(f"calibrate: teacher lr {lr}, {teacher_steps} steps")
            record = one({"teacher_train.max_steps": str(teacher_steps), "teacher_train.lr": str(lr),
                          "train.max_steps": "1", "eval_every": str(teacher_steps // points)})
            for task, curve in record.get("teacher_curves", {}).items():
                step, value, kind = plateau_step(curve["points"])
                summary["teacher"].append({"task": task, "lr": lr, "plateau_step": step, "best": value,
                                           "compared": kind, "converged": curve["converged"],
                                           "loss_drop": curve.get("loss_drop"), "score_gain": curve.get("score_gain"),
                                           "points": curve["points"], "record": record["run_id"]})
                if best is None or _better(value, best[1], kind):
                    best = (lr, value, kind)
        rows = [r for r in summary["teacher"] if r["lr"] == best[0]]
        converged = all(r["converged"] for r in rows)
        score_stopped = all(r["score_gain"] is not None and r["score_gain"] < SCORE_TOLERANCE for r in rows)
        teacher_choice = {"steps": teacher_steps, "lr": best[0], "converged": converged,
                          "score_stopped": score_stopped, "plateau_step": max(r["plateau_step"] for r in rows)}
        if not converged and score_stopped:
            log(f"calibrate: the teacher's validation score stopped improving by {teacher_steps} steps (gain <"
                f" {SCORE_TOLERANCE} point over the last 20%: its budget), though its validation loss still fell")
        elif not converged:
            log(f"calibrate: the teacher was still improving after {teacher_steps} steps; raise teacher_steps")
    summary["teacher_choice"] = teacher_choice
    if not steps:
        return _write(summary, base.suite, results_dir, steps, teacher_steps, log)
    best = None
    for lr in lrs:
        log(f"calibrate: student (none) lr {lr}, {steps} steps")
        extra = {"train.max_steps": str(steps), "train.lr": str(lr), "eval_every": str(steps // points)}
        if teacher_steps:  # the calibration teacher, cached above: `none` never reads it, only its score
            extra.update({"teacher_train.max_steps": str(teacher_steps), "teacher_train.lr": str(teacher_choice["lr"])})
        record = one(extra)
        worst = None
        for task, curve in record["curves"].items():
            step, value, kind = plateau_step(curve["points"])
            summary["student"].append({"task": task, "lr": lr, "plateau_step": step, "best": value, "compared": kind,
                                       "converged": curve["converged"], "loss_drop": curve.get("loss_drop"),
                                       "score_gain": curve.get("score_gain"), "points": curve["points"],
                                       "record": record["run_id"]})
            worst = step if worst is None else max(worst, step)
        score = sum(r["best"] if r["compared"] == "score" else -r["best"] for r in summary["student"] if r["lr"] == lr)
        if best is None or score > best[1]:
            best = (lr, score, worst)
    converged = all(r["converged"] for r in summary["student"] if r["lr"] == best[0])
    summary["student_choice"] = {"steps": steps, "lr": best[0], "converged": converged,
                                 "plateau_step": round_budget(best[2])}
    if not converged:
        log(f"calibrate: the student was still improving after {steps} steps; raise steps")
        summary["student_extrapolation"] = _extrapolations(
            [r for r in summary["student"] if r["lr"] == best[0] and not r["converged"]], results_dir, base.suite, log)
    return _write(summary, base.suite, results_dir, steps, teacher_steps, log)


def _write(summary: dict, suite: str, results_dir: Path, steps: int, teacher_steps: int, log) -> dict:
    """Write the calibration file and print the suggested TOML lines; steps=0 calibrated the teacher only."""
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # named by its budgets, so a later calibration at other lengths in the same folder keeps this one
    out = results_dir / f"calibration-{suite}-{steps}-steps-teacher-{teacher_steps}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    log(f"calibration written to {out}")
    log("suggested budget (suites/<suite>.toml):")
    if steps:
        log(f"[train]\nmax_steps = {summary['student_choice']['steps']}\nlr = {summary['student_choice']['lr']}")
    if teacher_steps:
        choice = summary["teacher_choice"]
        log(f"[teacher_train]\nmax_steps = {choice['steps']}\nlr = {choice['lr']}")
    return summary
