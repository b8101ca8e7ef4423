"""Seed-aware comparisons of methods in one leaderboard group: the two-level bootstrap per task and on the
average (kdbench.stats), one Holm family per table, and the minimum detectable difference.

`rows` are kdbench.leaderboard.MethodRow objects (a method, its runs, and where the comparisons go).
"""

from __future__ import annotations

import hashlib

import numpy as np

from kdbench.metric_specs import headline, lookup, score_metrics
from kdbench.results import load_examples
from kdbench.stats import (MDE_FACTOR, MIN_RESAMPLES, MIN_SEEDS, Comparison, compare, holm, prepare, resample_indices,
                           score, seed_draws, two_level)


class Comparisons:
    """Seed-aware comparisons of two methods per task and on the average (kdbench.stats, two-level bootstrap).

    Every run's per-example statistics are prepared once; each run is then scored on the example resample
    of every seed position (positions: the largest seed count in the group), and those values are shared
    by every pair of methods: a pair only adds its own seed draws."""

    def __init__(self, rows: list, tasks: list[str], n_resamples: int = MIN_RESAMPLES):
        self.n_resamples = n_resamples  # B: kdbench.stats.resamples_for(the Holm family's size)
        self.rows = {row.method: row for row in rows}
        self.examples = {row.method: [load_examples(r) for r in row.runs] for row in rows}
        self.tasks = tasks
        self.positions = max(len(row.runs) for row in rows)
        self.cache: dict[tuple, tuple | str] = {}
        self.compared: dict[str, list[str]] = {}  # task -> the metrics its comparisons score
        self.seeds_only: set[str] = set()  # tasks scored by one run-level value: the bootstrap draws seeds alone

    def run_values(self, method: str, task: str, metric: str | None = None) -> tuple[np.ndarray, np.ndarray, bool] | str:
        """(values (runs, positions, B), observed score per run, whether they come from the per-example
        outputs), or the reason there are none. The score is
        the task score (the mean of its resampled metrics), or one `metric`: resampled from the per-example
        outputs where they hold it, else a run-level value (a diagnostic, perplexity), which only the seed
        draw resamples."""
        key = (method, task, metric)
        if key not in self.cache:
            self.cache[key] = self._compute(method, task, metric)
        return self.cache[key]

    def _compute(self, method: str, task: str, metric: str | None) -> tuple[np.ndarray, np.ndarray, bool] | str:
        per_run = self.examples[method]
        held = {m for e in per_run if e and task in e for info in e[task].values() for m in info["metrics"]}
        if metric is not None and metric not in held:
            return self._run_level(method, task, metric)
        head = headline(list(self.rows[method].tasks.get(task, {})))
        if metric is None and len(head) == 1 and head[0] not in held:
            # a run-level headline (perplexity; a char task's loss, whose examples file holds the CER beside it):
            # it is what the task is judged by, and its seeds still resample
            self.compared[task] = head
            self.seeds_only.add(task)
            return self._run_level(method, task, head[0])
        if any(e is None or task not in e for e in per_run):
            return "no per-example outputs"
        splits = per_run[0][task]
        values = np.zeros((len(per_run), self.positions, self.n_resamples))
        observed = np.zeros(len(per_run))
        count = 0
        for split, info in splits.items():
            refs = info["references"]
            if any(e[task].get(split, {}).get("references") != refs for e in per_run):
                return "runs differ in eval examples"
            chosen = [metric] if metric is not None else score_metrics(info["metrics"])
            missing = [m for m in chosen if (spec := lookup(m)) is None or spec.resample is None]
            if missing:
                return f"no resampling for {', '.join(missing)}"
            # the same example draws for every method: seeded by the task, split, references and position only
            base = int(hashlib.sha256(f"{task}/{split}/{refs!r}".encode()).hexdigest()[:8], 16)
            draws = [resample_indices(len(refs), self.n_resamples, base + j) for j in range(self.positions)]
            whole = np.arange(len(refs))[None, :]
            for m in chosen:
                for i, e in enumerate(per_run):
                    stats = [prepare(m, preds, refs) for preds in e[task][split]["predictions"].values()]
                    for j, idx in enumerate(draws):
                        values[i, j] += np.mean([score(m, st, idx) for st in stats], axis=0)
                    observed[i] += np.mean([score(m, st, whole)[0] for st in stats])
                count += 1
        if metric is None:
            self.compared[task] = sorted({m for info in splits.values() for m in score_metrics(info["metrics"])})
        return values / count, observed / count, True

    def _run_level(self, method: str, task: str, metric: str) -> tuple[np.ndarray, np.ndarray, bool] | str:
        """A metric the per-example outputs do not hold: each run's value from its record (metrics, then
        diagnostics), constant over example draws."""
        observed = []
        for r in self.rows[method].runs:
            value = r["metrics"].get(task, {}).get(metric, r.get("diagnostics", {}).get(task, {}).get(metric))
            if not isinstance(value, (int, float)):
                return f"no {metric} for {task} in {r['run_id']}"
            observed.append(float(value))
        observed = np.asarray(observed)
        return np.broadcast_to(observed[:, None, None], (len(observed), self.positions, self.n_resamples)), observed, False

    def same_examples(self, a: str, b: str, task: str) -> bool:
        ea, eb = self.examples[a][0][task], self.examples[b][0][task]
        return {s: i["references"] for s, i in ea.items()} == {s: i["references"] for s, i in eb.items()}

    def pair(self, method: str, ref: str, with_average: bool, metric: str | None = None) -> dict[str, Comparison | str]:
        """task (and "avg") -> the comparison of `method` − `ref` on the task score (or on `metric`), or the
        reason there is none."""
        a_runs, b_runs = self.rows[method].runs, self.rows[ref].runs
        seed = int(hashlib.sha256(f"{method}/{ref}".encode()).hexdigest()[:8], 16)
        choice_a, choice_b, paired = seed_draws([r["seed"] for r in a_runs], [r["seed"] for r in b_runs],
                                                self.n_resamples, seed)
        n = (len(a_runs), len(b_runs))
        out: dict[str, Comparison | str] = {}
        stars, observed = [], []
        for task in self.tasks:
            a, b = self.run_values(method, task, metric), self.run_values(ref, task, metric)
            if isinstance(a, str) or isinstance(b, str):
                out[task] = a if isinstance(a, str) else b
                continue
            if a[2] and b[2] and not self.same_examples(method, ref, task):
                out[task] = "different eval examples"
                continue
            star = two_level(a[0], choice_a) - two_level(b[0], choice_b)
            delta = float(a[1].mean() - b[1].mean())
            out[task] = compare(star, delta, n, paired)
            stars.append(star)
            observed.append(delta)
        if not with_average:
            out["avg"] = "no average"
        elif len(stars) < len(self.tasks):
            out["avg"] = next(v for v in out.values() if isinstance(v, str))
        else:
            out["avg"] = compare(np.mean(stars, axis=0), float(np.mean(observed)), n, paired)
        return out


def planned_tests(rows: list, tasks: list[str], references: tuple[str, ...]) -> int:
    """How many tests a table will hold at most (before they are computed, to choose B): every method against
    every other reference present, per task and on the average, where both sides have MIN_SEEDS seeds."""
    seeds = {row.method: len(row.runs) for row in rows}
    pairs = sum(1 for row in rows for ref in references
                if ref != row.method and ref in seeds and min(seeds[row.method], seeds[ref]) >= MIN_SEEDS)
    return pairs * (len(tasks) + 1)


def family(rows: list) -> list[Comparison]:
    """The table's comparisons that have a p-value: one Holm family."""
    return [c for row in rows for per_task in row.comparisons.values() for c in per_task.values()
            if isinstance(c, Comparison) and c.p is not None]


def adjust(rows: list) -> None:
    """Holm–Bonferroni across the table's comparisons (every method against kd and none, per task and average)."""
    tests = family(rows)
    for comparison, adjusted in zip(tests, holm([c.p for c in tests])):
        comparison.p_holm = adjusted


def mde(rows: list, tasks: list[str]) -> dict[str, float]:
    """task|"avg" -> minimum detectable difference (α = 0.05, 80% power): MDE_FACTOR × the median bootstrap
    standard error of the table's comparisons on it."""
    out = {}
    for task in tasks + ["avg"]:
        sds = [c.sd for row in rows for per_task in row.comparisons.values()
               if isinstance(c := per_task.get(task), Comparison) and c.sd is not None]
        if sds:
            out[task] = MDE_FACTOR * float(np.median(sds))
    return out
