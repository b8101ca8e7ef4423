"""`kdbench study`: published claims written as data, measured on kdbench's sweeps, with computed verdicts.

    kdbench study [file=studies/published_effects.toml] [results_dir=results] [out=STUDY.md] [run=true]

A study file (TOML) lists claims; each names the paper's statement and numbers (context: kdbench's
students differ, so only the direction is tested), the kdbench cell that tests it (suite, task or "avg",
metric or "score"), the method, its reference, and the claimed direction of method − reference:
"higher", "lower", or "equal" within `margin` (relative to the reference's mean). The method or reference
may name one variant row of the leaderboard, `uld[align=bytes]`, where a method's records differ in a key.
With `run=true` the study first runs each claim's sweep (method and reference, the file's `seeds`;
complete cells are skipped, so it resumes; plain methods only). It then reads the records
(kdbench.leaderboard: each student once, dirty trees left out) and compares method with reference by the leaderboard's two-level bootstrap (kdbench.stats):
Δ with its 95% interval, p, the minimum detectable difference; one Holm family over the study's tests.

Verdicts, computed, never written by hand (α = 0.05, Holm-adjusted p):
- "higher"/"lower": **supported** when p_Holm < α and Δ has the claimed sign; **contradicted** when
  p_Holm < α and Δ has the other sign; otherwise **inconclusive (underpowered)**: the study could not
  tell a difference smaller than its minimum detectable difference from none.
- "equal": **supported** when the 95% interval of Δ lies within ±margin·|reference|; **contradicted**
  when p_Holm < α and |Δ| > margin·|reference|; otherwise **inconclusive (underpowered)**.
- **not measured**: the cell has no records (yet), or too few seeds for a test (< 3), or some of the
  method's or reference's runs did not learn (kdbench.convergence.learned: their Δ is shown, not judged);
  the line says which.

Writes `out` (STUDY.md) and, beside it, the same per claim as data (`out` with .json: the cell, Δ with its
95% interval, p, p_Holm, the minimum detectable effect, the verdict and why; `outcomes_json`).

Every problem with the file (unknown method, suite or metric; a claim without a direction; cells that span
suite versions) is one line naming the file and the claim's line; nothing is written.
"""

from __future__ import annotations

import json
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdbench.convergence import LEARNED_RULE
from kdbench.config import DEFAULT_RESULTS_DIR
from kdbench.errors import KdbenchError

ALPHA = 0.05
DIRECTIONS = ("higher", "lower", "equal")
REQUIRED = ("id", "source", "statement", "suite", "task", "metric", "method", "reference", "direction")
OPTIONAL = ("published", "margin")
RUN_LEVEL_METRICS = ("cr@5", "mor@5", "kl_teacher", "agree@1", "ece", "loss", "perplexity")  # from records, not examples
VERDICTS = ("supported", "contradicted", "inconclusive (underpowered)", "not measured")


@dataclass(frozen=True)
class Claim:
    id: str
    source: str
    statement: str
    suite: str
    task: str  # a task name, or "avg": the suite's average score
    metric: str  # a metric name, or "score": the task score (mean of its metrics)
    method: str
    reference: str
    direction: str
    line: int  # where the claim starts in its file (for error messages)
    published: dict = field(default_factory=dict)
    margin: float | None = None


@dataclass
class Outcome:
    claim: Claim
    verdict: str
    why: str = ""
    comparison: object = None  # kdbench.stats.Comparison
    means: tuple[float, float] | None = None  # (method, reference)
    mde: float | None = None
    runs: list = field(default_factory=list)
    still_improving: int = 0
    not_learned: dict = field(default_factory=dict)  # method -> runs that did not learn (kdbench.convergence.learned)
    budget_bound: str | None = None


def _claim_lines(text: str) -> list[int]:
    """1-based line of each [[claim]] header, in order."""
    return [i + 1 for i, line in enumerate(text.splitlines()) if line.strip().startswith("[[claim]]")]


def load_study(path: Path) -> tuple[list[int], list[Claim]]:
    """(seeds, claims) of a study file; a bad file raises one KdbenchError naming the file and line."""
    import kdbench.methods  # noqa: F401  (registers the methods)
    from kdbench.config import suite_names
    from kdbench.metric_specs import METRICS
    from kdbench.registry import METHODS, did_you_mean

    if not path.is_file():
        raise KdbenchError(f"study file {path} does not exist; pass file=<path to a study TOML>")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise KdbenchError(f"{path}: invalid TOML: {e}") from None
    unknown_top = sorted(set(data) - {"seeds", "claim"})
    if unknown_top:
        raise KdbenchError(f"{path}: unknown key {unknown_top[0]!r} (a study file has `seeds` and [[claim]] tables)")
    seeds = data.get("seeds", [0, 1, 2, 3, 4])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise KdbenchError(f"{path}: seeds must be a list of integers, e.g. seeds = [0, 1, 2, 3, 4]")
    raw, lines = data.get("claim", []), _claim_lines(text)
    if not raw:
        raise KdbenchError(f"{path}: no [[claim]] tables")
    metrics = set(METRICS) | set(RUN_LEVEL_METRICS) | {"score"}
    claims, seen = [], set()
    for entry, line in zip(raw, lines):
        where = f"{path}:{line}"
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            hint = " (one of higher, lower, equal)" if "direction" in missing else ""
            raise KdbenchError(f"{where}: claim {entry.get('id', '?')!r} has no {missing[0]}{hint}")
        extra = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
        if extra:
            raise KdbenchError(f"{where}: claim {entry['id']!r} has an unknown key {extra[0]!r}")
        if entry["id"] in seen:
            raise KdbenchError(f"{where}: claim id {entry['id']!r} is used twice")
        seen.add(entry["id"])
        if entry["suite"] not in suite_names():
            raise KdbenchError(f"{where}: unknown suite {entry['suite']!r}; {did_you_mean(entry['suite'], suite_names())}")
        for role in ("method", "reference"):
            name = method_name(entry[role])
            if name not in METHODS.names():
                raise KdbenchError(f"{where}: unknown {role} {name!r};"
                                   f" {did_you_mean(name, METHODS.names())}")
        if entry["metric"] not in metrics:
            raise KdbenchError(f"{where}: unknown metric {entry['metric']!r}; {did_you_mean(entry['metric'], sorted(metrics))}")
        if entry["direction"] not in DIRECTIONS:
            raise KdbenchError(f"{where}: direction {entry['direction']!r} is not one of {', '.join(DIRECTIONS)}")
        margin = entry.get("margin")
        if entry["direction"] == "equal" and not (isinstance(margin, (int, float)) and margin > 0):
            raise KdbenchError(f"{where}: claim {entry['id']!r} says \"equal\": give margin = <relative tolerance > 0>,"
                               " e.g. margin = 0.02")
        claims.append(Claim(**{k: entry[k] for k in REQUIRED}, line=line, published=entry.get("published", {}),
                            margin=float(margin) if margin is not None else None))
    return seeds, claims


def method_name(label: str) -> str:
    """The registered method of a claim's method or reference: a plain name (`uld`) or a leaderboard row label
    of one variant of it (`uld[align=bytes]`, the keys where its records differ from a plain run; kdbench.students.rows_by_variant)."""
    return label.split("[", 1)[0]


def _verdict(claim: Claim, c, reference_mean: float) -> tuple[str, str]:
    if c.p is None:
        return "not measured", c.reason
    if claim.direction == "equal":
        bound = claim.margin * abs(reference_mean)
        if c.p_holm < ALPHA and abs(c.delta) > bound:
            return "contradicted", f"|Δ| > {bound:.3g} (margin) and p_Holm < {ALPHA}"
        if -bound <= c.low and c.high <= bound:
            return "supported", f"the 95% interval lies within ±{bound:.3g} (margin)"
        return "inconclusive (underpowered)", f"the 95% interval reaches beyond ±{bound:.3g} without a significant difference"
    sign = 1.0 if claim.direction == "higher" else -1.0
    if c.p_holm < ALPHA:
        return ("supported", "") if sign * c.delta > 0 else ("contradicted", "significant in the other direction")
    return "inconclusive (underpowered)", f"p_Holm = {c.p_holm:.3f} ≥ {ALPHA}"


def _cells(claims: list[Claim], results_dir: Path, allow_dirty: bool, path: Path) -> dict:
    """suite -> its leaderboard groups; refuses a claim whose method and reference span suite versions."""
    from kdbench.leaderboard import collect

    groups = {}
    for suite in sorted({c.suite for c in claims}):
        found = collect(results_dir, suite, allow_dirty)[0] if (results_dir / suite).is_dir() else []
        groups[suite] = found
        for claim in (c for c in claims if c.suite == suite):
            versions = {g.key[1] for g in found for row in g.rows if row.method in (claim.method, claim.reference)}
            if len(versions) > 1:
                raise KdbenchError(f"{path}:{claim.line}: claim {claim.id!r}: the records of {claim.method} and"
                                   f" {claim.reference} in {results_dir / suite} span suite versions"
                                   f" {sorted(versions)}; move the superseded records out (git history keeps them)")
    return groups


def measure(path: Path, results_dir: Path, allow_dirty: bool = False) -> list[Outcome]:
    """Every claim's comparison and verdict (one Holm family over the study's tests)."""
    from kdbench.comparisons import Comparisons
    from kdbench.stats import MDE_FACTOR, holm, resamples_for

    _, claims = load_study(path)
    groups = _cells(claims, results_dir, allow_dirty, path)
    resamples = resamples_for(len(claims))  # the Holm family: at most one test per claim
    outcomes = []
    for claim in claims:
        group = next((g for g in groups[claim.suite] if {claim.method, claim.reference} <= {r.method for r in g.rows}),
                     None)
        if group is None:
            outcomes.append(Outcome(claim, "not measured", f"no complete records of both {claim.method} and"
                                                           f" {claim.reference} under {results_dir / claim.suite}"))
            continue
        rows = [r for r in group.rows if r.method in (claim.method, claim.reference)]
        if claim.task != "avg" and claim.task not in group.tasks:
            outcomes.append(Outcome(claim, "not measured", f"the records hold no task {claim.task!r}"))
            continue
        compare = Comparisons(rows, group.tasks if claim.task == "avg" else [claim.task], resamples)
        metric = None if claim.metric == "score" else claim.metric
        result = compare.pair(claim.method, claim.reference, claim.task == "avg", metric)[claim.task]
        runs = [r for row in rows for r in row.runs]
        outcome = Outcome(claim, "not measured", runs=runs,
                          still_improving=sum(k for row in rows for k, _ in row.improving.values()),
                          not_learned=_not_learned(rows, group.tasks if claim.task == "avg" else [claim.task]),
                          budget_bound=next((row.budget_bound for row in rows if row.budget_bound), None))
        if isinstance(result, str):
            outcome.why = result
        else:
            outcome.comparison = result
            tasks = group.tasks if claim.task == "avg" else [claim.task]
            outcome.means = tuple(float(np.mean([compare.run_values(m, t, metric)[1].mean() for t in tasks]))
                                  for m in (claim.method, claim.reference))
            outcome.mde = MDE_FACTOR * result.sd if result.sd is not None else None
        outcomes.append(outcome)
    tested = [o for o in outcomes if o.comparison is not None and o.comparison.p is not None]
    for o, adjusted in zip(tested, holm([o.comparison.p for o in tested])):
        o.comparison.p_holm = adjusted
    for o in outcomes:
        if o.comparison is not None:
            o.verdict, o.why = _verdict(o.claim, o.comparison, o.means[1])
            if o.not_learned:  # a score from a student that has not learned is not a result (README)
                o.verdict, o.why = "not measured", "; ".join(
                    f"{k} of the runs of {method} did not learn" for method, k in o.not_learned.items())
    return outcomes


def _not_learned(rows: list, tasks: list[str]) -> dict[str, int]:
    """method -> how many of its runs did not learn on some of `tasks` (only methods with such runs)."""
    from kdbench.leaderboard import runs_not_learned

    counts = {row.method: len(runs_not_learned(row.runs, tasks)[0]) for row in rows}
    return {method: k for method, k in counts.items() if k}


def _fmt(value, spec=".3f") -> str:
    return "–" if value is None else f"{value:{spec}}"


def render(outcomes: list[Outcome], command: str, path: Path, seconds: float, commit: dict) -> str:
    """STUDY.md: one row per claim, then each claim's notes; the cost of the runs behind it. `commit` is
    kdbench.results.git_commit() taken before anything is written (the report itself is a tracked file)."""
    from kdbench.results import run_seconds
    from kdbench.stats import resamples_for

    runs = {r["run_id"]: r for o in outcomes for r in o.runs}
    hours = sum(run_seconds(r) for r in runs.values()) / 3600
    lines = [
        "# Replication study: published claims, measured", "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{command}` from `{path}`, code commit"
        f" {(commit.get('sha') or 'unknown')[:7]}{' (uncommitted changes)' if commit.get('dirty') else ''}.", "",
        "Verdicts are computed (kdbench/study.py): Δ = method − reference with its 95% interval and p from a"
        " two-level bootstrap (seeds, then eval examples; run-level metrics such as CR@5 and perplexity resample"
        f" seeds only; B = {resamples_for(len(outcomes)):,}, chosen from the number of claims),"
        " Holm-adjusted over the study's tests, α = 0.05; MDE = minimum detectable difference (80%"
        " power). Published numbers are the papers' own setting (context only: only the direction is tested).", "",
        "| claim | cell | n seeds | method | reference | Δ [95% interval] | p | p Holm | MDE | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        c, claim = o.comparison, o.claim
        cell = f"{claim.suite} / {claim.task} / {claim.metric}: {claim.method} vs {claim.reference} ({claim.direction})"
        if c is None:
            lines.append(f"| {claim.id} | {cell} | – | – | – | – | – | – | – | {o.verdict} |")
            continue
        interval = f"{c.delta:+.3f}" + (f" [{c.low:+.3f}, {c.high:+.3f}]" if c.low is not None else "")
        lines.append(f"| {claim.id} | {cell} | {c.n[0]} / {c.n[1]} | {o.means[0]:.3f} | {o.means[1]:.3f} | {interval}"
                     f" | {_fmt(c.p)} | {_fmt(c.p_holm)} | {_fmt(o.mde)} | **{o.verdict}** |")
    lines += ["", "## Claims", ""]
    for o in outcomes:
        claim = o.claim
        published = ", ".join(f"{k} {v}" for k, v in claim.published.items())
        lines.append(f"- **{claim.id}** ({claim.source}): {claim.statement}"
                     + (f" Published: {published}." if published else "")
                     + f" Verdict: **{o.verdict}**" + (f" ({o.why})" if o.why else "") + ".")
        # the suite's budget-bound statement holds for runs that pass the rule too (kdbench.leaderboard_render._marked)
        notes = ([f"its comparison above is shown but not judged: a score from a student that did not learn is not a"
                   f" result ({LEARNED_RULE})"] if o.not_learned
                 else [])
        notes += ([f"{o.still_improving} of its runs were still improving at their last step"] if o.still_improving
                  else []) + ([f"the suite is budget-bound: {o.budget_bound}"] if o.budget_bound else [])
        if notes:
            lines.append("  - " + "; ".join(notes) + ".")
    lines += ["", f"Cost: the {len(runs)} runs behind these verdicts took {hours:.2f} hours (their records' teacher,"
                  f" training, validation, scoring and diagnostics seconds); the study itself took {seconds:.0f} s.",
              ""]
    return "\n".join(lines)


def outcomes_json(outcomes: list[Outcome], command: str, path: Path, commit: dict) -> dict:
    """What STUDY.md says, per claim, as data (the JSON beside it): the cell, the measured effect with its 95%
    interval, p and Holm-adjusted p, the minimum detectable effect, the verdict and why."""
    claims = []
    for o in outcomes:
        c, claim = o.comparison, o.claim
        claims.append({
            "id": claim.id, "source": claim.source, "statement": claim.statement, "published": claim.published,
            "suite": claim.suite, "task": claim.task, "metric": claim.metric, "method": claim.method,
            "reference": claim.reference, "direction": claim.direction, "margin": claim.margin,
            "seeds": list(c.n) if c else None, "means": list(o.means) if o.means else None,
            "delta": c.delta if c else None, "ci95": [c.low, c.high] if c and c.low is not None else None,
            "p": c.p if c else None, "p_holm": c.p_holm if c else None, "mde": o.mde,
            "verdict": o.verdict, "why": o.why, "runs_still_improving": o.still_improving,
            "runs_not_learned": o.not_learned,
        })
    return {"study": str(path), "command": command, "code": commit,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "claims": claims}


def study(overrides: dict[str, str], log=print) -> list[Outcome]:
    """Run (optionally) and measure a study; writes its Markdown report only when everything succeeded."""
    from kdbench.config import convert
    from kdbench.results import atomic_write_text, git_commit

    allowed = {"file", "results_dir", "out", "run", "allow_dirty", "data_dir", "cache_dir"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise KdbenchError(f"unknown key {unknown[0]!r} for study; it takes {', '.join(sorted(allowed))}")
    path = Path(overrides.get("file", "studies/published_effects.toml"))
    results_dir = Path(overrides.get("results_dir", DEFAULT_RESULTS_DIR))
    out = Path(overrides.get("out", str(results_dir / "STUDY.md")))  # the tracked STUDY.md only when asked
    start = time.perf_counter()
    seeds, claims = load_study(path)  # validate before anything runs
    if convert("run", overrides.get("run", "false"), bool):
        from kdbench.sweep import sweep

        variant = next((c for c in claims for m in (c.method, c.reference) if m != method_name(m)), None)
        if variant is not None:  # a row label names keys of records, not a sweep's arguments
            raise KdbenchError(f"{path}:{variant.line}: claim {variant.id!r} names a variant row"
                               f" ({variant.method} vs {variant.reference}); run=true sweeps plain methods only: run"
                               " its sweeps with the variant's keys (e.g. method.align=bytes), then the study without run")
        passthrough = {k: overrides[k] for k in ("data_dir", "cache_dir") if k in overrides}
        for suite in sorted({c.suite for c in claims}):
            methods = sorted({m for c in claims if c.suite == suite for m in (c.method, c.reference)})
            log(f"study: sweep suite={suite} methods={methods} seeds={seeds}")
            sweep({"suite": suite, "methods": f"[{','.join(methods)}]", "seeds": f"[{','.join(map(str, seeds))}]",
                   "results_dir": str(results_dir), **passthrough}, log=log)
    outcomes = measure(path, results_dir, convert("allow_dirty", overrides.get("allow_dirty", "false"), bool))
    command = "kdbench study " + " ".join(f"{k}={v}" for k, v in overrides.items()).strip()
    commit = git_commit()  # once, before writing: the second file would otherwise see the first as a change
    report = render(outcomes, command, path, time.perf_counter() - start, commit)
    data, as_data = out.with_suffix(".json"), json.dumps(outcomes_json(outcomes, command, path, commit), indent=2) + "\n"
    atomic_write_text(out, report)
    atomic_write_text(data, as_data)
    for o in outcomes:
        log(f"{o.claim.id}: {o.verdict}" + (f" ({o.why})" if o.why else ""))
    log(f"written: {out} and {data}")
    return outcomes
