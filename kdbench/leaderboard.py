"""Result records → a Markdown table of methods × tasks, plus the teacher row.

    kdbench leaderboard suite=glue results_dir=results

Rows are grouped by (suite, suite version, teacher, student, training budget);
results from different groups are never mixed in one table. Each cell is the
mean over the runs (seeds) of that method, n is their count. A task with two
metrics shows both (e.g. MRPC acc/F1); the task score used in the average is
the mean of its metrics (the GLUE convention); the average is left out ("–")
when a task is missing or a metric is not a higher-is-better 0–100 score
(perplexity, CER, lm-eval's raw values). Only complete records count.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean

from kdbench.metrics import HIGHER_IS_BETTER
from kdbench.results import load_records


def group_key(record: dict) -> tuple:
    cfg = record["config"]
    budget = f"{cfg['train']['max_steps']} steps x {cfg['train']['batch_size']}"
    teacher_budget = f"{cfg['teacher_train']['max_steps']} steps x {cfg['teacher_train']['batch_size']}"
    rows = f"train rows {cfg['data']['max_train_examples'] or 'all'}, eval rows {cfg['data']['max_eval_examples'] or 'all'}"
    return (record["suite"], record["suite_version"], record["teacher"]["name"], record["student"]["name"],
            budget, teacher_budget, rows)


def _cell(metric_means: dict[str, float]) -> str:
    return "/".join(f"{v:.1f}" for v in metric_means.values())


def _average(per_task: dict[str, dict[str, float]], tasks: list[str]) -> float | None:
    """Mean of task scores, only when every task is present and every metric is a 0–100 higher-is-better score
    (an average with perplexities or error rates in it would mean nothing)."""
    if not all(t in per_task for t in tasks):
        return None
    if not all(HIGHER_IS_BETTER.get(m) for t in tasks for m in per_task[t]):
        return None
    return mean(mean(per_task[t].values()) for t in tasks)


def _mean_metrics(runs: list[dict[str, dict[str, float]]], task: str) -> dict[str, float] | None:
    have = [r[task] for r in runs if task in r]
    if not have:
        return None
    return {m: mean(h[m] for h in have) for m in have[0]}


def table(records: list[dict]) -> str:
    """One Markdown table for records of a single group."""
    tasks = sorted({t for r in records for t in r["metrics"]})
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_method[r["method"]].append(r)
    metric_names = {t: "/".join(next(r["metrics"][t] for r in records if t in r["metrics"])) for t in tasks}
    header = ["method", "n"] + [f"{t} ({metric_names[t]})" for t in tasks] + ["avg", "train s", "student params"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]

    def row(name: str, runs: list[dict[str, dict[str, float]]], n: int, train_s: str, params: str) -> str:
        per_task = {t: m for t in tasks if (m := _mean_metrics(runs, t)) is not None}
        avg = _average(per_task, tasks)
        cells = [_cell(per_task[t]) if t in per_task else "–" for t in tasks]
        return "| " + " | ".join([name, str(n)] + cells + [f"{avg:.1f}" if avg is not None else "–", train_s, params]) + " |"

    teacher_runs = [r["teacher_metrics"] for r in records if r.get("teacher_metrics")]
    teacher_params = next((r["params"].get("teacher") for r in records if r["params"].get("teacher")), None)
    lines.append(row("teacher", teacher_runs[:1], 1, "–", f"{teacher_params / 1e6:.1f}M" if teacher_params else "–"))
    order = sorted(by_method, key=lambda m: (m != "none", m))
    for method in order:
        runs = by_method[method]
        train_s = mean(r["timings"]["train_s"] for r in runs)
        params = runs[0]["params"].get("student")
        lines.append(row(method, [r["metrics"] for r in runs], len(runs), f"{train_s:.0f}", f"{params / 1e6:.1f}M" if params else "–"))
    return "\n".join(lines)


def leaderboard(results_dir: Path, suite: str | None = None) -> tuple[str, list[str]]:
    """Markdown for every group of complete records, and notes on what was left out."""
    records, skipped = load_records(results_dir, suite)
    complete = []
    for r in records:
        if r.get("status", "complete") != "complete":
            skipped.append(f"{r['_path']}: status {r.get('status')!r} (run did not finish)")
        else:
            complete.append(r)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in complete:
        groups[group_key(r)].append(r)
    parts = []
    for key in sorted(groups):
        suite_name, version, teacher, student, budget, teacher_budget, rows = key
        parts.append(
            f"### {suite_name} v{version}: {teacher} → {student}\n\n"
            f"Student budget {budget}; teacher fine-tuning {teacher_budget}; {rows}.\n\n{table(groups[key])}\n"
        )
    return "\n".join(parts), skipped
