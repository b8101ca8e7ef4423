"""Leaderboard groups → tables (terminal, Markdown, CSV, HTML) and the files `kdbench leaderboard` writes.

The wide table (one row per method) goes to the terminal, Markdown and HTML;
CSV is long (one row per group × method × task × metric) so that it loads
straight into a data frame.
"""

from __future__ import annotations

import csv
import io
import math
from statistics import mean
from pathlib import Path

from kdbench.convergence import LEARNED_RULE, RULE
from kdbench.comparisons import family
from kdbench.leaderboard import Group, MethodRow, Summary, run_average
from kdbench.metric_specs import higher_is_better, is_spread, score_metrics
from kdbench.stats import MIN_SEEDS, Comparison

from kdbench.tables import TableSection

DASH = "–"


def fmt_summary(s: Summary | None, digits: int = 1) -> str:
    if s is None:
        return DASH
    value, half, n = s
    if abs(value) < 10:  # small raw values (lm-eval accuracies in 0–1, BLEU near 0) need more digits
        digits = max(digits, 3)
    return f"{value:.{digits}f} ± {half:.{digits}f}" if half is not None else f"{value:.{digits}f}"


def fmt_p(p: float | None) -> str:
    """A p-value as computed: bootstrap p-values are never below 2/(B+1), so none prints as 0 or "<"."""
    if p is None:
        return DASH
    return f"{p:.3f}" if p >= 0.001 else f"{p:.4f}"


def delta_digits(size: float) -> int:
    """Decimals that give a difference of `size` (an interval's width, an MDE) two significant digits, 2 to 4:
    a char loss moves by hundredths of a nat, where "+0.01 [-0.00, +0.03]" would hide the result."""
    if not size or not math.isfinite(size):
        return 2
    return min(4, max(2, 1 - math.floor(math.log10(abs(size)))))


def fmt_comparison(c: Comparison | str | None) -> str:
    """"+1.2 [+0.3, +2.1] p 0.004, Holm 0.030"; "+1.2 (n<3)" without a test; "–" without a comparison."""
    if not isinstance(c, Comparison):
        return DASH
    if c.p is None:
        d = delta_digits(c.delta)
        return f"{c.delta:+.{d}f} (n<{MIN_SEEDS})"
    d = delta_digits(c.high - c.low)
    return f"{c.delta:+.{d}f} [{c.low:+.{d}f}, {c.high:+.{d}f}] p {fmt_p(c.p)}, Holm {fmt_p(c.p_holm)}"


def _cell(summaries: dict[str, Summary] | None) -> tuple[str, float | None]:
    if not summaries:
        return DASH, None
    values = list(summaries.values())
    n = max(s[2] for s in values)
    return " / ".join(fmt_summary(s) for s in values) + f" (n={n})", sum(s[0] for s in values) / len(values)


def _trivial_cell(metrics: dict[str, float] | None, names: list[str]) -> tuple[str, float | None]:
    """A trivial baseline's values; named when it covers only some of the task's metrics (e.g. CER alone)."""
    if not metrics:
        return DASH, None
    shown = [m for m in names if m in metrics]
    if shown == list(names):
        return " / ".join(fmt_summary((metrics[m], None, 1)) for m in shown), mean(metrics[m] for m in shown)
    return ", ".join(f"{m} {fmt_summary((metrics[m], None, 1))}" for m in shown), mean(metrics[m] for m in shown)


BELOW_TRIVIAL = "▽"
ONE_SEED_ABOVE = "?"
IMPROVING = "↗"
NOT_LEARNED = "✗"


def _marked(cell: tuple[str, float | None], row: MethodRow, task: str) -> tuple[str, float | None]:
    """A task cell with its warnings: ✗ k/n did not learn (their scores are not results), ▽ not clearly above
    the trivial baseline, ? above it on one seed (no interval to say "clearly"), ↗ k/n still improving, and
    "budget-bound" on every cell of a suite that states its students cannot plateau at this budget, whether
    or not a run passes the rule (a learning rate decayed to 0 flattens any curve: README "Budget-bound
    suites")."""
    text, value = cell
    k, n = row.not_learned.get(task, (0, 0))
    if k:
        text += f" {NOT_LEARNED} {k}/{n}"
    if task in row.below_trivial:
        text += f" {BELOW_TRIVIAL}"
    if task in row.one_seed_above:
        text += f" {ONE_SEED_ABOVE}"
    k, n = row.improving.get(task, (0, 0))
    if k:
        text += f" {IMPROVING} {k}/{n}"
    if row.budget_bound:
        text += " budget-bound"
    return text, value


def _comparison_cell(row: MethodRow, ref: str, tasks: list[str]) -> tuple[str, float | None]:
    """Every task's (and the average's) comparison with `ref`; sorts by the average's Δ."""
    per_task = row.comparisons.get(ref, {})
    if not any(isinstance(c, Comparison) for c in per_task.values()):
        return DASH, None
    parts = [f"{t} {fmt_comparison(c)}" for t in tasks + ["avg"] if isinstance(c := per_task.get(t), Comparison)]
    avg = per_task.get("avg")
    return "; ".join(parts), avg.delta if isinstance(avg, Comparison) else None


def _params(n: int | None) -> tuple[str, float | None]:
    """A parameter count: millions (22.7M), or thousands below a million (12K)."""
    if not n:
        return DASH, None
    return (f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"), float(n) / 1e6


def _num(value: float | None, spec: str, suffix: str = "") -> tuple[str, float | None]:
    return (DASH, None) if value is None else (f"{value:{spec}}{suffix}", float(value))


def _train_s_cell(row: MethodRow) -> tuple[str, float | None]:
    """Mean training seconds; named per device where any run trained elsewhere than on the CPU
    ("cpu 3180 (n=1) · cuda 68 (n=2)"), sorted by the CPU's figure (MethodRow.train_device)."""
    if list(row.train_s_by_device) in ([], ["cpu"]):
        return _num(row.train_s, ".0f")
    per_device = sorted(row.train_s_by_device.items())
    text = " · ".join(f"{device} {seconds:.0f} (n={n})" for device, (seconds, n) in per_device)
    return text, row.train_s


def section(group: Group) -> TableSection:
    diag_keys = sorted({k for row in group.rows for k in row.diagnostics})
    sampling = any(row.generation_s is not None for row in group.rows)  # a column only where a method samples
    columns = (["method"] + [f"{t} ({'/'.join(group.metric_names[t])})" for t in group.tasks] + ["avg"]
               + ["Δ vs kd", "Δ vs none", "student params", "compression", "train s"]
               + (["of which sampling s"] if sampling else []) + ["train ex/s", "train tok/s"] + diag_keys)
    rows = []
    teacher_cells = [_cell({m: (v, None, 1) for m, v in group.teacher[t].items() if not is_spread(m)})
                     if t in group.teacher else (DASH, None) for t in group.tasks]
    t_avg = run_average(group.teacher, group.tasks)
    teacher_row = [("teacher", None)] + teacher_cells + [_num(t_avg, ".1f")] + [(DASH, None)] * 2 + [
        _params(group.teacher_params), ("1.0x", 1.0),
        (DASH, None), (DASH, None), (DASH, None)] + [(DASH, None)] * (len(diag_keys) + sampling)
    trivial_rows = []
    for name, per_task in group.trivial.items():
        cells = [(f"trivial: {name}", None)] + [_trivial_cell(per_task.get(t), group.metric_names[t])
                                                 for t in group.tasks]
        cells.append(_num(run_average(per_task, group.tasks), ".1f"))
        trivial_rows.append(cells + [(DASH, None)] * (len(columns) - len(cells)))
    for row in group.rows:
        cells = [(row.method, None)] + [_marked(_cell(row.tasks.get(t)), row, t) for t in group.tasks]
        cells.append((fmt_summary(row.average), row.average[0]) if row.average else (DASH, None))
        cells += [_comparison_cell(row, ref, group.tasks) for ref in ("kd", "none")]
        cells += [_params(row.student_params), _num(row.compression, ".1f", "x"), _train_s_cell(row)]
        cells += [_num(row.generation_s, ".0f")] if sampling else []
        cells += [_num(row.examples_per_s, ".1f"), _num(row.tokens_per_s, ".0f")]
        cells += [(fmt_summary(row.diagnostics.get(k), 3 if "kl" in k else 1),
                   row.diagnostics[k][0] if k in row.diagnostics else None)
                  for k in diag_keys]
        rows.append(cells)
    all_rows = [teacher_row] + trivial_rows + rows
    notes = list(group.notes)
    if any(k for row in group.rows for k, _ in row.not_learned.values()):
        notes.append(f"{NOT_LEARNED} k/n: k of the n runs did not learn ({LEARNED_RULE}); their scores are not"
                     " results of the method, only of this training failing")
    if any(row.below_trivial for row in group.rows):
        notes.append(f"{BELOW_TRIVIAL}: not clearly above the best trivial baseline (the 95% interval of the task score"
                     " reaches it)")
    if any(row.one_seed_above for row in group.rows):
        notes.append(f"{ONE_SEED_ABOVE}: above every trivial baseline on one seed, which has no interval to call it"
                     " clearly above")
    if any(k for row in group.rows for k, _ in row.improving.values()):
        notes.append(f"{IMPROVING} k/n: k of the n runs were still improving at their last step ({RULE})")
    bound = next((row.budget_bound for row in group.rows if row.budget_bound), None)
    if bound:
        notes.append(f"budget-bound: {bound}")
    reasons: dict[str, set[str]] = {}
    for row in group.rows:
        for ref, per_task in row.comparisons.items():
            for c in per_task.values():
                why = c if isinstance(c, str) else c.reason
                if why and why != "no average":  # the caption already explains a missing average
                    reasons.setdefault(why, set()).add(f"{row.method} vs {ref}")
    notes += [f"no test ({reason}) for {', '.join(sorted(pairs))}" for reason, pairs in sorted(reasons.items())]
    links = [[] for _ in [teacher_row] + trivial_rows] + [student_cards(row.runs) for row in group.rows]
    return TableSection(group.title, group.caption + " " + statistics_caption(group), columns,
                        [[c[0] for c in r] for r in all_rows], [[c[1] for c in r] for r in all_rows], notes, links)


def student_cards(runs: list[dict]) -> list[tuple[str, str]]:
    """(label, model card path) of each run's saved students that are still on disk: "seed 0", or
    "seed 0 sst2" where a run saved one per task."""
    out = []
    for r in runs:
        saved = r.get("students") or {}
        for task, folder in sorted(saved.items()):
            card = Path(folder) / "README.md"
            if card.is_file():
                out.append((f"seed {r['seed']}" + (f" {task}" if len(saved) > 1 else ""), str(card)))
    return out


def statistics_caption(group: Group) -> str:
    """What the cells and comparisons are: the test, B, the Holm family and the minimum detectable difference."""
    tests = len(family(group.rows))
    # the direction of what Δ measures: each task's score (kdbench.metric_specs.score_metrics)
    lower = sorted({m for names in group.metric_names.values() for m in score_metrics(names) if not higher_is_better(m)})
    direction = f" (lower is better for {', '.join(lower)})" if lower else ""
    text = ("Cells: mean ± 95% CI half-width over seeds (n runs). Δ vs kd / none: method − reference in the task's"
            f" score points{direction}, [95% interval], two-sided p from a"
            " two-level bootstrap (seeds, then eval examples within each seed; paired by seed where both share"
            f" seeds; B = {group.resamples:,}, chosen from the table's size, so p ≥ 2/{group.resamples + 1:,});"
            f" no test with fewer than {MIN_SEEDS} seeds.")
    if tests:
        text += (f" Holm over this table's {tests} test{'s' if tests != 1 else ''} (every method vs kd and vs none,"
                 " per task and on the average).")
    if group.mde:
        text += (" Minimum detectable difference (α = 0.05, 80% power, from the bootstrap standard errors): "
                 + ", ".join(f"{t} {v:.{delta_digits(v)}f}" for t, v in group.mde.items()) + ".")
    return text


def markdown(sections: list[TableSection]) -> str:
    parts = []
    for s in sections:
        lines = [f"### {s.title}", "", s.caption, "", "| " + " | ".join(s.columns) + " |",
                 "|" + "|".join(["---"] * len(s.columns)) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in s.rows]
        if s.notes:
            lines += [""] + [f"- {n}" for n in s.notes]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def terminal(sections: list[TableSection]) -> str:
    parts = []
    for s in sections:
        widths = [max(len(c), *(len(r[i]) for r in s.rows)) for i, c in enumerate(s.columns)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        parts.append("\n".join([s.title, s.caption, line(s.columns), line(["-" * w for w in widths])]
                               + [line(r) for r in s.rows] + [f"  note: {n}" for n in s.notes]))
    return "\n\n".join(parts) + "\n"


CSV_COLUMNS = ["suite", "suite_version", "teacher", "student", "budget", "teacher_budget", "rows", "teacher_outputs",
               "method", "task",
               "metric", "mean", "ci95_half_width", "n",
               *(f"{part}_vs_{ref}" for ref in ("kd", "none") for part in ("delta", "delta_low", "delta_high", "p", "p_holm")),
               "mde", "student_params", "train_s", "train_examples_per_s", "train_tokens_per_s", "train_device"]
NO_COMPARISON = ["", "", "", "", ""]


def _comparison_cells(c) -> list:
    """delta, its interval, p and Holm p (task level: the same on every metric row of the task)."""
    if not isinstance(c, Comparison):
        return NO_COMPARISON
    return [c.delta, *("" if v is None else v for v in (c.low, c.high, c.p, c.p_holm))]


def _key_cells(g: Group) -> list[str]:
    """The group key as CSV cells; the teacher representation is "dense" unless the key names another."""
    return [*g.key[:7], g.key[7].removeprefix("teacher outputs ") if len(g.key) > 7 else "dense"]


def to_csv(groups: list[Group]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for g in groups:
        for t in g.tasks:
            for m, v in g.teacher.get(t, {}).items():
                if not is_spread(m):
                    writer.writerow([*_key_cells(g), "teacher", t, m, v, "", 1, *NO_COMPARISON * 2, "",
                                     g.teacher_params or "", "", "", "", ""])
        for name, per_task in g.trivial.items():
            for t, metrics in per_task.items():
                for m, v in metrics.items():
                    writer.writerow([*_key_cells(g), f"trivial: {name}", t, m, v, "", 1, *NO_COMPARISON * 2, "", "", "",
                                     "", "", ""])
        for row in g.rows:
            for t, metrics in row.tasks.items():
                compared = [x for ref in ("kd", "none") for x in _comparison_cells(row.comparisons.get(ref, {}).get(t))]
                for m, (value, half, n) in metrics.items():
                    writer.writerow([*_key_cells(g), row.method, t, m, value, "" if half is None else half, n,
                                     *compared, g.mde.get(t, ""),
                                     row.student_params or "", row.train_s, row.examples_per_s or "",
                                     row.tokens_per_s or "", row.train_device])
    return out.getvalue()


def write_all(groups: list[Group], skipped: list[str], results_dir: Path, name: str, generated: str) -> dict[str, Path]:
    """Markdown, CSV, HTML and PNG files in results_dir; returns {format: path}."""
    from kdbench.html_report import render_html
    from kdbench.plots import write_plots
    from kdbench.results import atomic_write_text

    sections = [section(g) for g in groups]
    footer = generated + ("\nLeft out:\n" + "\n".join(skipped) if skipped else "")
    paths = {"md": results_dir / f"leaderboard_{name}.md", "csv": results_dir / f"leaderboard_{name}.csv",
             "html": results_dir / f"leaderboard_{name}.html"}
    left_out = "".join(f"- left out: {s}\n" for s in skipped)
    atomic_write_text(paths["md"], markdown(sections) + (f"\n{left_out}" if left_out else "") + f"\n{generated}\n")
    atomic_write_text(paths["csv"], to_csv(groups))
    atomic_write_text(paths["html"], render_html(f"kdbench leaderboard: {name}", sections, footer, base=results_dir))
    paths.update(write_plots(groups, results_dir, name))
    return paths
