"""Result records → leaderboard groups: mean ± 95% CI over seeds, seed-aware comparisons, cost columns.

    kdbench leaderboard suite=glue results_dir=results

Rows are grouped by (suite, suite version, teacher, student, training budget);
records from different groups are never mixed, and every record left out is
named with the reason. A method's cell is the mean over its runs (seeds) ±
the half-width of the 95% t interval (`kdbench.stats.mean_ci`), with n.

A task's score is the mean of its metrics (the GLUE convention, e.g. MRPC
acc/F1). The average column is the mean of task scores, computed per run and
then summarised over runs; it is left out ("–") when a task is missing or a
metric is not a higher-is-better 0–100 score (perplexity, CER, lm-eval's raw
values): an average with those in it would mean nothing.

Each student counts once: a repeated run of one configuration and seed (the same config hash) is not a
new seed. The newest complete record wins; the others are set aside and the group's caption says how
many. Code versions: the caption says how many commits a group's records come from, and records from a
tree with uncommitted changes (`git_commit.dirty`) are left out, named, unless `allow_dirty=true`; the
caption then says how many it holds.

Comparisons: each method against `kd` and against `none`, per task and on the average: the difference
Δ in score points with its 95% interval and two-sided p from a two-level bootstrap (seeds, then eval
examples within each seed; paired by seed where both methods share seeds; B resamples, at least 1,000
and more for a wide table: kdbench.stats.resamples_for its number of tests), see kdbench.stats. Fewer
than 3 seeds on a side: Δ only, and the reason. The p-values of one table are one family, Holm-adjusted;
the table also gives the minimum detectable difference per task (α = 0.05, 80% power). They need the
per-example outputs beside the records, and identical eval examples on both sides; otherwise the cell
says why there is none.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean


from kdbench.comparisons import Comparisons, adjust, mde, planned_tests
from kdbench.convergence import judge, learned
from kdbench.metric_specs import higher_is_better, is_spread, lookup, score_metrics
from kdbench.results import device_type, load_examples, load_records
from kdbench.stats import MIN_RESAMPLES, Z95, Comparison, mean_ci, resamples_for
from kdbench.students import newest_per_student, rows_by_variant, trained_precision

REFERENCE_METHODS = ("kd", "none")


def teacher_representation(record: dict) -> str:
    """How the record's method saw the teacher: "dense" (the exact distribution, live or cached), or
    "topk(k)" when it read the cached top-k approximation (kdbench.teacher.cache)."""
    for meta in record.get("teacher_outputs", {}).values():
        if meta.get("used") and meta.get("kind") == "topk":
            return f"topk({meta.get('k')})"
    return "dense"


def group_key(record: dict) -> tuple:
    """What makes records comparable: suite and version, the pair, the budgets and row limits, and, only where
    it is the top-k approximation, the teacher representation (one objective per table), a student that
    starts from the fine-tuned teacher's layers (student_init=teacher) rather than the pretrained ones, and
    mixed precision (bf16 autocast on CUDA trains and fine-tunes the teacher differently from fp32 on a CPU)."""
    cfg = record["config"]
    budget = f"{cfg['train']['max_steps']} steps x {cfg['train']['batch_size']}"
    if cfg["train"].get("keep", "last") == "best":  # an early-stopped student is a different budget from the last step's
        budget += ", best validation point kept"
    teacher_budget = f"{cfg['teacher_train']['max_steps']} steps x {cfg['teacher_train']['batch_size']}"
    rows = f"train rows {cfg['data']['max_train_examples'] or 'all'}, eval rows {cfg['data']['max_eval_examples'] or 'all'}"
    student = record["student"]["name"]
    if cfg.get("student_init", "pretrained") != "pretrained":
        student += " (from the fine-tuned teacher)"
    key = (record["suite"], record["suite_version"], record["teacher"]["name"], student, budget, teacher_budget, rows)
    representation = teacher_representation(record)
    if representation != "dense":
        key += (f"teacher outputs {representation}",)
    precision = trained_precision(record)
    return key if precision == "no" else key + (f"{precision} mixed precision",)


Summary = tuple  # (mean, CI half-width or None, n)


@dataclass
class MethodRow:
    method: str
    runs: list[dict]
    tasks: dict[str, dict[str, Summary]]  # task -> metric -> summary over runs
    average: Summary | None
    comparisons: dict[str, dict[str, Comparison | str]] = field(default_factory=dict)  # ref -> task|"avg" -> it, or why none
    student_params: int | None = None
    compression: float | None = None
    train_s: float | None = None  # mean over the runs on train_device (CPU and GPU seconds never average)
    train_device: str = "cpu"  # the device of train_s and the throughputs: the CPU where a run trained there
    train_s_by_device: dict[str, tuple[float, int]] = field(default_factory=dict)  # device -> (mean train_s, runs)
    generation_s: float | None = None  # of train_s: sampling responses (on-policy methods, SeqKD)
    examples_per_s: float | None = None
    tokens_per_s: float | None = None
    diagnostics: dict[str, Summary] = field(default_factory=dict)  # e.g. "sst2 mor@5" -> summary
    improving: dict[str, tuple[int, int]] = field(default_factory=dict)  # task -> (runs still improving, runs)
    not_learned: dict[str, tuple[int, int]] = field(default_factory=dict)  # task -> (runs that did not learn, runs)
    budget_bound: str | None = None  # the suite's statement that its students cannot plateau at this budget
    below_trivial: set = field(default_factory=set)  # tasks where the row is not clearly above the trivial baseline
    one_seed_above: set = field(default_factory=set)  # tasks above every trivial baseline on one seed: no interval


@dataclass
class Group:
    key: tuple
    tasks: list[str]
    metric_names: dict[str, list[str]]
    teacher: dict[str, dict[str, float]]
    teacher_params: int | None
    rows: list[MethodRow]
    notes: list[str] = field(default_factory=list)
    trivial: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # baseline -> task -> metrics
    duplicates: int = 0  # repeated runs of one configuration and seed, set aside (the newest counts)
    mde: dict[str, float] = field(default_factory=dict)  # task|"avg" -> minimum detectable difference (points)
    dirty: int = 0  # records from a tree with uncommitted changes (only with allow_dirty=true)
    description: str = ""  # the suite file's description, at the records' version (kdbench.leaderboard.suite_text)
    resamples: int = MIN_RESAMPLES  # B of the table's bootstrap (kdbench.stats.resamples_for its family)

    @property
    def commits(self) -> int:
        """How many code commits the group's records come from (records without one count as one more)."""
        return len({(r.get("git_commit") or {}).get("sha") for row in self.rows for r in row.runs})

    @property
    def title(self) -> str:
        suite, version, teacher, student = self.key[:4]
        extra = f" ({', '.join(self.key[7:])})" if len(self.key) > 7 else ""  # two tables never share a title
        return f"{suite} v{version}: {teacher} → {student}{extra}"

    @property
    def caption(self) -> str:
        extra = "".join(f"; {part}" for part in self.key[7:])
        code = f" Code: {self.commits} commit{'s' if self.commits != 1 else ''}"
        if self.dirty:
            code += f", {self.dirty} run{'s' if self.dirty != 1 else ''} from a tree with uncommitted changes (allow_dirty=true)"
        if self.duplicates:
            code += (f"; {self.duplicates} repeated run{'s' if self.duplicates != 1 else ''} of one configuration and"
                     " seed set aside (the newest counts)")
        what = f"{self.description.rstrip('.')}. " if self.description else ""
        return f"{what}Student budget {self.key[4]}; teacher fine-tuning {self.key[5]}; {self.key[6]}{extra}.{code}."


def _task_score(metrics: dict[str, float]) -> float:
    return mean(metrics[m] for m in score_metrics(metrics))


def run_average(metrics: dict[str, dict[str, float]], tasks: list[str]) -> float | None:
    """Mean of task scores, only when every task is present and every task's score (its metrics in the
    direction of the first: kdbench.metric_specs.score_metrics) is a higher-is-better 0–100 score."""
    if not all(t in metrics for t in tasks):
        return None
    if not all((spec := lookup(m)) is not None and spec.task_score for t in tasks for m in score_metrics(metrics[t])):
        return None
    return mean(_task_score(metrics[t]) for t in tasks)


def _summaries(runs: list[dict[str, dict[str, float]]], task: str) -> dict[str, Summary] | None:
    have = [r[task] for r in runs if task in r]
    if not have:
        return None
    return {m: mean_ci([h[m] for h in have if m in h]) for m in have[0] if not is_spread(m)}


def _mean_or_none(values) -> float | None:
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def _cost(row: MethodRow, teacher_params: int | None) -> None:
    runs = row.runs
    row.student_params = runs[0]["params"].get("student")
    if row.student_params and teacher_params:
        row.compression = teacher_params / row.student_params
    by_device: dict[str, list[dict]] = {}
    for r in runs:
        by_device.setdefault(device_type(r), []).append(r)
    row.train_s_by_device = {d: (mean(r["timings"]["train_s"] for r in rs), len(rs)) for d, rs in by_device.items()}
    # Seconds on a GPU are 30-70x fewer than on the CPU for the same cell: a mean over both describes no machine.
    # The costs come from one device's runs, the CPU's where any run trained there (the tables' reference machine).
    row.train_device = "cpu" if "cpu" in by_device else max(by_device, key=lambda d: len(by_device[d]))
    timed = by_device[row.train_device]
    row.train_s = mean(r["timings"]["train_s"] for r in timed)
    row.generation_s = _mean_or_none(r["timings"].get("generation_s") for r in timed)
    throughput = [t for r in timed for t in r.get("throughput", {}).values() if "shared_with" not in t]
    row.examples_per_s = _mean_or_none(t.get("train_examples_per_s") for t in throughput)
    row.tokens_per_s = _mean_or_none(t.get("train_tokens_per_s") for t in throughput)


EMPTY = "empty_%"  # the diagnostic column of empty_output_percent


def empty_output_percent(examples: dict | None) -> dict[str, float]:
    """task -> % of the run's text outputs that are empty as scored (one-line tasks after the cut at the first
    newline; multi-line tasks, minillm's, as generated), over every split and decoding of its examples file.
    An empty output is the empty-output baseline's answer and scores 0, so a share above 0 says where a
    generation score went (README "Students that learn"); tasks whose outputs are not text (class labels) are
    left out."""
    out = {}
    for task, splits in (examples or {}).items():
        texts = [p for split in splits.values() if isinstance(split, dict)
                 for preds in split.get("predictions", {}).values() if isinstance(preds, list)
                 for p in preds if isinstance(p, str)]
        if texts:
            out[task] = 100.0 * sum(not p.strip() for p in texts) / len(texts)
    return out


def _diagnostics(runs: list[dict]) -> dict[str, Summary]:
    """Per-run distribution diagnostics (top-k overlap, ECE) summarised over runs, and the share of empty outputs
    from the runs' examples files."""
    values: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        for task, diag in r.get("diagnostics", {}).items():
            for name, value in diag.items():
                if isinstance(value, (int, float)):
                    values[f"{task} {name}"].append(float(value))
        for task, share in empty_output_percent(load_examples(r)).items():
            values[f"{task} {EMPTY}"].append(share)
    return {k: mean_ci(v) for k, v in sorted(values.items())}


def _drop_empty_column_if_zero(rows: list[MethodRow], notes: list[str]) -> None:
    """Keep the empty-output column only in a table where some run has an empty output, and say what it is."""
    keys = {k for row in rows for k in row.diagnostics if k.endswith(f" {EMPTY}")}
    for key in sorted(keys):  # sorted: the notes come out in one order on every run
        if all(row.diagnostics[key][0] == 0 for row in rows if key in row.diagnostics):
            for row in rows:
                row.diagnostics.pop(key, None)
        else:
            task = key[: -len(EMPTY) - 1]
            notes.append(f"{key}: the share of {task}'s test outputs that are empty as scored (one-line tasks after"
                         " the cut at the first newline): the empty-output baseline's answer, which scores 0")


def _trivial(records: list[dict], notes: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """baseline name -> task -> metrics, from the records (every run computes them from its data)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    seen: dict[str, set] = defaultdict(set)
    for r in records:
        for task, baselines in r.get("trivial", {}).items():
            seen[task].add(repr(sorted(baselines.items())))
            for name, metrics in baselines.items():
                out.setdefault(name, {}).setdefault(task, metrics)
    if any(len(v) > 1 for v in seen.values()):
        notes.append("trivial baselines differ between records; the first is shown")
    return out


def _bounds(summaries: list[Summary], eval_half: float = 0.0) -> tuple[float, float]:
    """(lower, upper) end of the 95% interval of the mean of some metrics: their mean ± the mean half-width,
    with `eval_half` (the evaluation set's own 95% half-width) added in quadrature."""
    value = mean(s[0] for s in summaries)
    halves = [s[1] for s in summaries if s[1] is not None]
    half = math.hypot(mean(halves) if halves else 0.0, eval_half)
    return value - half, value + half


def _eval_half_width(runs: list[dict], task: str, metrics: list[str]) -> float:
    """z_0.975 (1.96) × the mean standard error over evaluation documents that the runs recorded for `metrics`
    (lm-eval's `acc_stderr`), 0 where they recorded none. Every seed is scored on the same documents, so
    this error does not shrink with seeds: a seed interval alone (0.500 ± 0.000 on 200 SST-2 documents from
    two seeds that both scored 0.500) would call a score clear of a baseline it is within sampling error of."""
    errors = [r["metrics"][task][f"{m}_stderr"] for r in runs for m in metrics
              if isinstance(r.get("metrics", {}).get(task, {}).get(f"{m}_stderr"), (int, float))]
    return Z95 * mean(errors) if errors else 0.0


def _flag_trivial(row: MethodRow, trivial: dict, tasks: list[str]) -> None:
    """Mark the tasks where the row is not clearly above some trivial baseline: on the metrics the two share,
    the 95% interval of the row's mean reaches the baseline's mean (direction-aware). A row whose scores have
    no interval (one seed) and sit above every baseline is put in `one_seed_above` instead: its score alone
    cannot say "clearly" (lmeval SST-2 0.500 against a majority class of 0.495 is one such). Where the runs
    recorded a standard error over evaluation documents, it widens the interval (kdbench.leaderboard
    ._eval_half_width)."""
    for task in tasks:
        metrics = row.tasks.get(task, {})
        compared = False
        for baseline in trivial.values():
            shared = [m for m in score_metrics(list(metrics)) if m in baseline.get(task, {})]
            if not shared:
                continue
            compared = True
            higher = higher_is_better(shared[0])  # score metrics share one direction
            low, high = _bounds([metrics[m] for m in shared], _eval_half_width(row.runs, task, shared))
            value = mean(baseline[task][m] for m in shared)
            if (low <= value) if higher else (high >= value):
                row.below_trivial.add(task)
        no_interval = all(metrics[m][1] is None for m in score_metrics(list(metrics)))
        if compared and no_interval and task not in row.below_trivial:
            row.one_seed_above.add(task)


def _improving(runs: list[dict], tasks: list[str]) -> dict[str, tuple[int, int]]:
    """task -> (runs whose curve was still improving at the last step, runs with a curve). Each curve is
    judged again by the rule in force (kdbench.convergence), the one the table's note states: a record
    written under an older tolerance keeps its own stored verdict, but the table never mixes two rules."""
    out = {}
    for task in tasks:
        curves = [r["curves"][task] for r in runs if task in r.get("curves", {})]
        verdicts = [judge(c["points"])["converged"] if c.get("points") else c.get("converged") for c in curves]
        if verdicts:
            out[task] = (sum(v is False or v is None for v in verdicts), len(verdicts))
    return out


def runs_not_learned(runs: list[dict], tasks: list[str]) -> tuple[set[int], int]:
    """(indices of the runs that did not learn on some of `tasks` by kdbench.convergence.learned, how many
    runs have a curve it can judge). Judged from the points, so records older than the rule count too."""
    bad, judged = set(), set()
    for i, r in enumerate(runs):
        for task in tasks:
            verdict = learned(r.get("curves", {}).get(task, {}).get("points", []))
            if verdict is not None:
                judged.add(i)
            if verdict is False:
                bad.add(i)
    return bad, len(judged)


def _not_learned(runs: list[dict], tasks: list[str]) -> dict[str, tuple[int, int]]:
    """task -> (runs that did not learn, runs whose curve can be judged), for tasks with such a curve."""
    counts = {task: runs_not_learned(runs, [task]) for task in tasks}
    return {task: (len(bad), judged) for task, (bad, judged) in counts.items() if judged}


def build_group(key: tuple, records: list[dict], compare: bool = True) -> Group:
    tasks = sorted({t for r in records for t in r["metrics"]})
    metric_names = {t: [m for m in next(r["metrics"][t] for r in records if t in r["metrics"]) if not is_spread(m)]
                    for t in tasks}
    by_method = rows_by_variant(records, key[0])
    notes = []
    teacher_sets = {repr(r["teacher_metrics"]) for r in records if r.get("teacher_metrics")}
    teacher = next((r["teacher_metrics"] for r in records if r.get("teacher_metrics")), {})
    if len(teacher_sets) > 1:
        notes.append(f"teacher scores differ between records ({len(teacher_sets)} versions); the first is shown")
    note = _teacher_versions_note(records, tasks)
    if note:
        notes.append(note)
    teacher_params = next((r["params"].get("teacher") for r in records if r["params"].get("teacher")), None)
    # a statement the suite file gained after these records ran still covers them while its version holds
    suite_info = current_suite_info(key[0], key[1])
    stated_bound = suite_info.budget_bound
    rows = []
    for method in sorted(by_method, key=lambda m: (m != "none", m != "kd", m)):
        runs = by_method[method]
        metrics = [r["metrics"] for r in runs]
        per_task = {t: s for t in tasks if (s := _summaries(metrics, t)) is not None}
        averages = [a for r in runs if (a := run_average(r["metrics"], tasks)) is not None]
        row = MethodRow(method, runs, per_task, mean_ci(averages) if len(averages) == len(runs) else None)
        _cost(row, teacher_params)
        row.diagnostics = _diagnostics(runs)
        row.improving = _improving(runs, tasks)
        row.not_learned = _not_learned(runs, tasks)
        row.budget_bound = next((r["budget_bound"] for r in runs if r.get("budget_bound")), stated_bound)
        rows.append(row)
    _drop_empty_column_if_zero(rows, notes)
    if any(len(row.train_s_by_device) > 1 or row.train_device != "cpu" for row in rows):
        notes.append("train s: per device where a row's runs trained on other devices than the CPU (GPU seconds "
                     "are 30-70x fewer and never averaged with CPU ones); the throughput columns and the Pareto "
                     "plot's time are the CPU runs' where a row has any")
    trivial = _trivial(records, notes)
    for row in rows:
        _flag_trivial(row, trivial, tasks)
    resamples = _compare_rows(rows, tasks, metric_names, notes) if compare else MIN_RESAMPLES
    group = Group(key, tasks, metric_names, teacher, teacher_params, rows, notes, trivial, resamples=resamples)
    group.mde = mde(rows, tasks) if compare else {}
    group.description, reference = suite_text(key[0], key[1], teacher=key[2], student=records[0]["student"]["name"],
                                              info=suite_info)
    if reference:
        notes.append(f"published reference, not kdbench's rows: {reference}")
    return group


def _compare_rows(rows: list[MethodRow], tasks: list[str], metric_names: dict, notes: list[str]) -> int:
    """Each row's comparisons with the reference methods (Holm-adjusted over the table), with the notes they
    need; returns the bootstrap's B."""
    resamples = resamples_for(planned_tests(rows, tasks, REFERENCE_METHODS))
    comparisons = Comparisons(rows, tasks, resamples)
    methods = {row.method for row in rows}
    for row in rows:
        for ref in REFERENCE_METHODS:
            if ref == row.method:
                continue
            if ref not in methods:
                row.comparisons[ref] = {t: f"no {ref} runs" for t in tasks + ["avg"]}
                continue
            row.comparisons[ref] = comparisons.pair(row.method, ref, row.average is not None)
    adjust(rows)
    for task in sorted(comparisons.seeds_only):
        compared = comparisons.compared[task][0]
        beside = [m for m in metric_names[task] if m != compared]
        notes.append(f"Δ on {task} compares {compared}, the task's headline, and resamples seeds only: the records"
                     f" keep {compared} per run, not per example" + (f" ({', '.join(beside)} shown beside it)"
                                                                    if beside else ""))
    for task, compared in sorted(comparisons.compared.items()):
        if task in comparisons.seeds_only:
            continue
        if set(compared) != set(metric_names[task]):
            scored = score_metrics(metric_names[task])
            beside = [m for m in metric_names[task] if m not in scored]
            if beside and set(compared) == set(scored):
                why = f"{', '.join(beside)}, of the other direction, is shown beside it, not averaged in"
            else:
                why = "the per-example outputs hold no other metric"
            notes.append(f"Δ on {task} compares {', '.join(compared)} only ({why})")
    return resamples


def _teacher_versions_note(records: list[dict], tasks: list[str]) -> str | None:
    """The note for records distilled from more than one fine-tuned teacher of a task (a teacher cache
    rebuilt on another machine or thread count is other weights), naming the seeds behind each; None when
    every task has one teacher."""
    parts = []
    for task in tasks:
        seeds_of: dict[str, set] = defaultdict(set)
        for r in records:
            sha = r.get("teacher_cache", {}).get(task, {}).get("weights_sha256")
            if sha:
                seeds_of[sha].add(r["seed"])
        if len(seeds_of) > 1:
            groups = sorted(sorted(seeds) for seeds in seeds_of.values())
            parts.append(f"{task} {len(groups)} (seeds " + " | ".join(", ".join(map(str, g)) for g in groups) + ")")
    if not parts:
        return None
    return ("the records were distilled from more than one fine-tuned teacher (teacher_cache.weights_sha256): "
            + "; ".join(parts) + "; a comparison pairs runs by seed, so it compares students of one teacher"
            " only where both methods hold the same seeds")


def current_suite_info(suite: str, version: str):
    """The suite file's SuiteInfo when the file is still at the records' version, else an empty one: what
    the suite says now (description, published reference, budget-bound statement) holds for records of that
    version only."""
    from kdbench.config import SuiteInfo

    try:
        info = SuiteInfo.load(suite)
    except Exception:  # noqa: BLE001 (a plug-in's suite no longer installed: the table goes without it)
        return SuiteInfo(suite, suite)
    return info if str(info.version) == str(version) else SuiteInfo(suite, suite)


def suite_text(suite: str, version: str, teacher: str = "", student: str = "", info=None) -> tuple[str, str]:
    """(description, reference) of the suite file, when it is still at the records' version: what a
    caption says a table is (a CPU subset of a protocol, say), and the published numbers beside it. A table
    of another teacher or student than the suite's own says so, since the description names the suite's pair.
    `info`: the suite's current_suite_info when the caller has it already (the file is then not read again)."""
    info = info if info is not None else current_suite_info(suite, version)
    if not info.description and not info.reference:
        return "", ""
    description = info.description
    if description and (teacher, student) != (info.teacher, info.student) and teacher and student:
        description = (f"{description.rstrip('.')} (the suite's default pair; this table's models: {teacher} ->"
                       f" {student})")
    return description, info.reference


def is_dirty(record: dict) -> bool:
    return bool((record.get("git_commit") or {}).get("dirty"))


def collect(results_dir: Path, suite: str | None = None, allow_dirty: bool = False,
            compare: bool = True) -> tuple[list[Group], list[str]]:
    """Leaderboard groups of the complete records under results_dir, and a note for each record left out;
    compare=False leaves out the comparisons (their bootstrap is most of the time)."""
    records, skipped = load_records(results_dir, suite)
    complete = []
    for r in records:
        if r.get("status", "complete") != "complete":
            skipped.append(f"{r['_path']}: status {r.get('status')!r} (the run did not finish)")
        elif is_dirty(r) and not allow_dirty:
            skipped.append(f"{r['_path']}: ran from a tree with uncommitted changes (commit it and re-run, or pass"
                           " allow_dirty=true)")
        else:
            complete.append(r)
    kept, repeats = newest_per_student(complete)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in kept:
        groups[group_key(r)].append(r)
    out = []
    for key in sorted(groups):
        group = build_group(key, groups[key], compare)
        group.duplicates = sum(group_key(r) == key for r in repeats)
        group.dirty = sum(is_dirty(r) for r in groups[key])
        out.append(group)
    return out, skipped
