"""Leaderboard plots (matplotlib, Agg backend, no display needed): PNG files beside the tables.

- `<name>_pareto_<i>.png`: each method's score against student parameters and
  against training throughput, teacher included; the Pareto front (no other
  point is both cheaper and better) is drawn as a line and its points ringed.
- `<name>_tasks_<i>.png`: per-task bars, one bar per method, whiskers = 95% CI over seeds.

The score is the average column when the group has one, else the first task's
first metric (its direction is respected when finding the front).
"""

from __future__ import annotations

from pathlib import Path

from kdbench.leaderboard import Group, run_average
from kdbench.metric_specs import higher_is_better


def _score_axis(group: Group) -> tuple[str, bool, dict[str, float]]:
    """(label, higher_is_better, {method or "teacher": score})."""
    if all(row.average for row in group.rows):
        points = {row.method: row.average[0] for row in group.rows}
        t = run_average(group.teacher, group.tasks)
        if t is not None:
            points["teacher"] = t
        return "average score", True, points
    task = group.tasks[0]
    metric = group.metric_names[task][0]
    points = {row.method: row.tasks[task][metric][0] for row in group.rows if task in row.tasks}
    if task in group.teacher:
        points["teacher"] = group.teacher[task][metric]
    return f"{task} {metric}", higher_is_better(metric), points


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the points that no other point beats on cost (x, lower is better) and score (y) at once."""
    sign = 1.0 if higher_is_better else -1.0
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((xo <= x and sign * yo >= sign * y) and (xo < x or sign * yo > sign * y)
                        for j, (xo, yo) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _pareto_panel(ax, names, xs, ys, higher, xlabel, ylabel):
    pts = list(zip(xs, ys))
    front = pareto_front(pts, higher)
    ax.scatter(xs, ys, color="tab:blue", zorder=3)
    for name, x, y in zip(names, xs, ys):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.plot([xs[i] for i in front], [ys[i] for i in front], color="tab:red", lw=1, zorder=2, label="Pareto front")
    ax.scatter([xs[i] for i in front], [ys[i] for i in front], s=120, facecolors="none", edgecolors="tab:red", zorder=4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def training_seconds_axis(group: Group) -> dict[str, float]:
    """method -> training seconds for the Pareto plot's time panel. One axis, one machine: the CPU's seconds
    where any row was timed there (kdbench.leaderboard.MethodRow.train_device), so a row timed only on a GPU
    sits out of a CPU table's panel rather than looking 50x cheaper."""
    devices = [row.train_device for row in group.rows if row.train_s]
    common = "cpu" if "cpu" in devices or not devices else max(sorted(set(devices)), key=devices.count)
    return {row.method: row.train_s for row in group.rows if row.train_s and row.train_device == common}


def _plot_group(group: Group, pareto_path: Path, tasks_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label, higher, points = _score_axis(group)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    params = {row.method: row.student_params for row in group.rows if row.student_params}
    if group.teacher_params:
        params["teacher"] = group.teacher_params
    names = [n for n in points if n in params]
    _pareto_panel(axes[0], names, [params[n] / 1e6 for n in names], [points[n] for n in names], higher,
                  "parameters (M), lower is cheaper", label)
    speed = training_seconds_axis(group)
    names = [n for n in points if n in speed]
    _pareto_panel(axes[1], names, [speed[n] for n in names], [points[n] for n in names], higher,
                  "student training time (s), lower is cheaper", label)
    fig.suptitle(group.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(pareto_path, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(group.tasks) + 3), 4.2))
    width = 0.8 / max(len(group.rows), 1)
    for k, row in enumerate(group.rows):
        xs, heights, errs = [], [], []
        for i, task in enumerate(group.tasks):
            if task not in row.tasks:
                continue
            summaries = list(row.tasks[task].values())
            xs.append(i + k * width)
            heights.append(sum(s[0] for s in summaries) / len(summaries))
            halves = [s[1] for s in summaries if s[1] is not None]
            errs.append(sum(halves) / len(halves) if halves else 0.0)
        ax.bar(xs, heights, width, yerr=errs, capsize=3, label=row.method)
    ax.set_xticks([i + width * (len(group.rows) - 1) / 2 for i in range(len(group.tasks))])
    ax.set_xticklabels([f"{t}\n({'/'.join(group.metric_names[t])})" for t in group.tasks], fontsize=8)
    ax.set_ylabel("task score (mean of its metrics)")
    ax.set_xlabel("whiskers: 95% CI over seeds", fontsize=8)
    ax.set_title(group.title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(tasks_path, dpi=110)
    plt.close(fig)


def curve_series(runs: list[dict], task: str) -> tuple[str, list[tuple[int, float, float | None]]] | None:
    """(y label, [(step, mean over runs, 95% CI half-width or None)]) of the runs' validation curves on a task:
    the validation score (mean of its metrics) where the task has one, else the validation loss."""
    from kdbench.convergence import point_score
    from kdbench.stats import mean_ci

    curves = [r["curves"][task]["points"] for r in runs if task in r.get("curves", {}) and r["curves"][task]["points"]]
    if not curves:
        return None
    scored = all(point_score(p) is not None for c in curves for p in c)
    by_step: dict[int, list[float]] = {}
    for points in curves:
        for p in points:
            by_step.setdefault(p[0], []).append(point_score(p) if scored else p[1])
    series = [(step, *mean_ci(values)[:2]) for step, values in sorted(by_step.items())]
    return ("validation score (mean of the task's metrics)" if scored else "validation loss (nats per token)"), series


def _plot_curves(group: Group, path: Path) -> bool:
    """Validation score (or loss) against training steps, one line per method, 95% band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in group.tasks if any(curve_series(row.runs, t) for row in group.rows)]
    if not tasks:
        return False
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        label, trained, untrained = "", [], []  # trained: band edges after step 0, where the methods differ
        for row in group.rows:
            found = curve_series(row.runs, task)
            if found is None:
                continue
            label, series = found
            steps = [p[0] for p in series]
            means = [p[1] for p in series]
            line, = ax.plot(steps, means, marker=".", label=f"{row.method} (n={len(row.runs)})")
            halves = [p[2] for p in series]
            if all(h is not None for h in halves):
                ax.fill_between(steps, [m - h for m, h in zip(means, halves)], [m + h for m, h in zip(means, halves)],
                                color=line.get_color(), alpha=0.15)
            trained += [m + sign * (h or 0.0) for step, m, h in series if step > 0 for sign in (-1, 1)]
            untrained += [m for step, m, _ in series if step == 0]
        if trained and max(trained) > min(trained):
            # the untrained model's point (step 0) would squash the trained part of every curve flat
            pad = 0.08 * (max(trained) - min(trained))
            low, high = min(trained) - pad, max(trained) + pad
            ax.set_ylim(low, high)
            if any(not low <= m <= high for m in untrained):
                label += "; step 0 off scale"
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{group.title}\nlearning curves on the held-out validation slice; band: 95% CI over seeds",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_plots(groups: list[Group], results_dir: Path, name: str) -> dict[str, Path]:
    """Three PNGs per group (pareto, tasks, curves); returns {"png_<kind>_<i>": path}."""
    out = {}
    for i, group in enumerate(groups):
        pareto, tasks = results_dir / f"leaderboard_{name}_pareto_{i}.png", results_dir / f"leaderboard_{name}_tasks_{i}.png"
        _plot_group(group, pareto, tasks)
        out[f"png_pareto_{i}"], out[f"png_tasks_{i}"] = pareto, tasks
        curves = results_dir / f"leaderboard_{name}_curves_{i}.png"
        if _plot_curves(group, curves):
            out[f"png_curves_{i}"] = curves
    return out
