"""`kdbench check`: the regression gate, newest results against committed baselines.

    kdbench check results_dir=results baselines_dir=baselines          # exit 1 on a regression
    kdbench check results_dir=results baselines_dir=baselines record=true   # write/update baselines

One baseline file per leaderboard group (suite, suite version, teacher, student,
budgets, row limits): baselines/<suite>-<hash of that key>.json, holding per
method, task and metric the mean, the sample standard deviation over seeds, n
and the direction.

"Newest results": per (method, seed) the most recent complete record of the group.

Tolerance, exactly: tol = max(floor, 3 · s), with s the baseline's sample
standard deviation over its seeds (0 with one seed). The floor is 1.0 point for
scores on a 0–100 scale (GLUE, BLEU, ROUGE, CER, agreement, ECE; `floor=`
changes it) and 5% of the baseline value for the others (perplexity, KL to the
teacher, lm-eval's raw values; `rel_floor=` changes it), so that float noise
between machines never fails a run while a broken loss does.
A regression is a current mean worse than the baseline by more than tol
(lower for higher-is-better metrics, higher for the others). Better by more than
tol is reported as "improved" and passes (re-record the baseline to lock it in).

Nothing passes silently: a group without a baseline file, a baseline whose
method or metric has no current result, or an unreadable baseline fails the check.

Verdicts (`study=studies/ci.toml`): the gate also measures a CI-sized study (kdbench.study) on the same
results and fails when any claim's verdict differs from the one committed in
baselines/study-<study name>.json (`record=true` writes it), or when that file is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean, stdev

from kdbench.errors import KdbenchError
from kdbench.leaderboard import group_key
from kdbench.results import atomic_write_text, load_records
from kdbench.metric_specs import lookup
from kdbench.students import newest_per_student, rows_by_variant

BASELINE_VERSION = 1


def baseline_file(baselines_dir: Path, key: tuple) -> Path:
    digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:12]
    return baselines_dir / f"{key[0]}-{digest}.json"


def newest_per_seed(records: list[dict], suite: str) -> dict[str, list[dict]]:
    """row label -> the newest complete record of each of its students (the leaderboard's rule and rows)."""
    return rows_by_variant(newest_per_student(records)[0], suite)


def _values(runs: list[dict], undeclared: set[str] | None = None) -> dict[str, dict[str, list[float]]]:
    """task -> metric -> one value per run (the diagnostics count as metrics of their task). Only declared
    metrics are gated (kdbench.metric_specs): spreads never, and an undeclared name goes to `undeclared`."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        for source in (r["metrics"], r.get("diagnostics", {})):
            for task, metrics in source.items():
                for metric, value in metrics.items():
                    spec = lookup(metric)
                    if spec is None and undeclared is not None:
                        undeclared.add(metric)
                    if isinstance(value, (int, float)) and spec is not None and spec.compared:
                        out[task][metric].append(float(value))
    return out


def _groups(results_dir: Path, suite: str | None, skipped: list[str] | None = None) -> dict[tuple, list[dict]]:
    """Complete records by leaderboard group; every file left out is named in `skipped`."""
    records, unreadable = load_records(results_dir, suite)
    if skipped is not None:
        skipped += unreadable
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("status") == "complete":
            groups[group_key(r)].append(r)
        elif skipped is not None:
            skipped.append(f"{r['_path']}: status {r.get('status')!r} (the run did not finish)")
    return groups


def record_baselines(results_dir: Path, baselines_dir: Path, suite: str | None = None) -> list[Path]:
    """Write one baseline per group from its newest results; returns the files written."""
    groups = _groups(results_dir, suite)
    if not groups:
        raise KdbenchError(f"no complete records under {results_dir} to record baselines from")
    written = []
    for key, records in sorted(groups.items()):
        methods = {}
        for method, runs in newest_per_seed(records, key[0]).items():
            methods[method] = {
                task: {m: {"mean": mean(v), "std": stdev(v) if len(v) > 1 else 0.0, "n": len(v),
                           "higher_is_better": lookup(m).higher_is_better} for m, v in metrics.items()}
                for task, metrics in _values(runs).items()}
            methods[method]["_seeds"] = sorted(r["seed"] for r in runs)
        path = baseline_file(baselines_dir, key)
        atomic_write_text(path, json.dumps({"baseline_version": BASELINE_VERSION, "group": list(key),
                                            "methods": methods}, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def verdict_file(baselines_dir: Path, study_file: Path) -> Path:
    return baselines_dir / f"study-{study_file.stem}.json"


def study_verdicts(study_file: Path, results_dir: Path) -> dict[str, str]:
    """claim id -> its verdict measured on results_dir."""
    from kdbench.study import measure

    return {o.claim.id: o.verdict for o in measure(study_file, results_dir)}


def record_verdicts(study_file: Path, results_dir: Path, baselines_dir: Path) -> Path:
    path = verdict_file(baselines_dir, study_file)
    atomic_write_text(path, json.dumps({"study": str(study_file), "verdicts": study_verdicts(study_file, results_dir)},
                                       indent=2, sort_keys=True) + "\n")
    return path


def check_verdicts(study_file: Path, results_dir: Path, baselines_dir: Path) -> tuple[list[str], list[str]]:
    """(report lines, problems): every claim's committed verdict against the one measured now."""
    path = verdict_file(baselines_dir, study_file)
    try:
        committed = json.loads(path.read_text(encoding="utf-8"))["verdicts"]
    except (OSError, ValueError, KeyError, TypeError):
        return [], [f"no readable verdict baseline {path}; record one with `kdbench check record=true study={study_file}`"]
    now = study_verdicts(study_file, results_dir)
    lines, problems = [], []
    for claim in sorted(set(committed) | set(now)):
        before, after = committed.get(claim, "absent"), now.get(claim, "absent")
        lines.append(f"verdict {claim}: {after}" + ("" if before == after else f" (committed: {before}) FLIPPED"))
        if before != after:
            problems.append(f"the verdict of {claim} flipped: committed {before!r}, measured {after!r}")
    return lines, problems


def tolerance(metric: str, baseline: dict, floor: float = 1.0, rel_floor: float = 0.05) -> float:
    spread = 3.0 * baseline["std"]
    spec = lookup(metric)
    if spec is not None and spec.percent:
        return max(floor, spread)
    return max(rel_floor * abs(baseline["mean"]), spread)


def check(results_dir: Path, baselines_dir: Path, suite: str | None = None, floor: float = 1.0,
          rel_floor: float = 0.05, skipped: list[str] | None = None, strict: bool = True,
          not_gated: list[str] | None = None):
    """(rows, problems): one row per compared metric, and every reason the check cannot pass.

    Torn, invalid and unfinished records are left out and named in `skipped` (they neither pass nor fail
    the check: the newest complete records per seed are what is compared). A group without a baseline (or
    no records at all) is a problem when `strict` (CI: nothing may go ungated); otherwise it is named in
    `not_gated` (a user's exploratory runs)."""
    groups = _groups(results_dir, suite, skipped)
    problems, rows = [], []
    ungated = problems if strict or not_gated is None else not_gated
    if not groups:
        ungated.append(f"no complete records under {results_dir}" + (f"/{suite}" if suite else ""))
    for key, records in sorted(groups.items()):
        path = baseline_file(baselines_dir, key)
        label = f"{key[0]} v{key[1]} {key[2]}→{key[3]} ({', '.join((key[4], *key[7:]))})"
        if not path.is_file():
            ungated.append(f"{label}: no baseline {path}; record one with `kdbench check record=true`")
            continue
        try:
            baseline = json.loads(path.read_text(encoding="utf-8"))["methods"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            problems.append(f"{path}: unreadable baseline ({type(e).__name__}); re-record it")
            continue
        undeclared: set[str] = set()
        current = {m: _values(runs, undeclared) for m, runs in newest_per_seed(records, key[0]).items()}
        if undeclared and skipped is not None:
            skipped.append(f"{label}: not gated, no declaration in kdbench.metric_specs: {', '.join(sorted(undeclared))}")
        for method, tasks in sorted(baseline.items()):
            for task, metrics in sorted((t, v) for t, v in tasks.items() if not t.startswith("_")):
                for metric, base in sorted(metrics.items()):
                    values = current.get(method, {}).get(task, {}).get(metric)
                    if not values:
                        problems.append(f"{label}: baseline has {method} {task} {metric} but the results do not")
                        continue
                    value, tol = mean(values), tolerance(metric, base, floor, rel_floor)
                    delta = value - base["mean"]
                    worse = -delta if base["higher_is_better"] else delta
                    status = "REGRESSED" if worse > tol else ("improved" if -worse > tol else "ok")
                    rows.append({"group": label, "method": method, "task": task, "metric": metric,
                                 "baseline": base["mean"], "current": value, "delta": delta, "tolerance": tol,
                                 "n": len(values), "status": status})
    return rows, problems


def report(rows: list[dict], problems: list[str]) -> str:
    header = ["method", "task", "metric", "baseline", "current", "delta", "tolerance", "n", "status"]
    table = [[r["method"], r["task"], r["metric"], f"{r['baseline']:.3f}", f"{r['current']:.3f}",
              f"{r['delta']:+.3f}", f"{r['tolerance']:.3f}", str(r["n"]), r["status"]] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    lines = []
    for group in dict.fromkeys(r["group"] for r in rows):
        lines += [group, line(header), line(["-" * w for w in widths])]
        lines += [line(t) for t, r in zip(table, rows) if r["group"] == group]
        lines.append("")
    lines += [f"FAIL: {p}" for p in problems]
    regressed = sum(r["status"] == "REGRESSED" for r in rows)
    verdict = "FAILED" if problems or regressed else "passed"
    lines.append(f"check {verdict}: {len(rows)} metrics compared, {regressed} regressed, {len(problems)} problems"
                 " (tolerance = max(floor, 3 x baseline seed std))")
    return "\n".join(lines)
