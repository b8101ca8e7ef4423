"""`kdbench status`: are the students trained? One row per leaderboard table, task and method, from the
records alone (kdbench.leaderboard.collect groups them as the leaderboard does):

- seeds: the runs behind the row;
- score: the task's headline over seeds: the mean of its 0-100 score metrics (accuracy and F1, the ROUGEs), or
  its first metric where they do not average (loss, perplexity, CER);
- ÷ teacher: student ÷ teacher for higher-is-better scores and teacher ÷ student for lower-is-better ones
  (perplexity, CER), so that 1.00 is the teacher's level either way;
- trivial: the best trivial baseline of the task on the same metrics (majority class, constant mean, unigram,
  empty output, copy the prompt), and whether the row is clearly above it (▽ when its 95% interval reaches it);
- learned k/n and still improving k/n (kdbench.convergence: `learned` and the convergence rule), and the
  suite's budget-bound statement where it has one;
- wall s: the mean of the runs' record seconds (kdbench.results.run_seconds), per device type where any
  run trained on a GPU (GPU seeds beside CPU ones: one mean would be a cost nobody paid);
- suite version: "current", or "superseded (now vN)" for records of an older version of the suite file.

It answers the question a score cannot: whether the number is a trained student's (README "Students that
learn"). Nothing here tests one method against another; the leaderboard does that.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from kdbench.config import load_suite_file
from kdbench.errors import KdbenchError
from kdbench.leaderboard import Group, MethodRow
from kdbench.metric_specs import headline, higher_is_better
from kdbench.results import device_type, run_seconds

COLUMNS = ("table", "task", "method", "seeds", "score", "teacher", "÷ teacher", "best trivial baseline",
           "above it", "learned", "still improving", "budget-bound", "wall s per run", "suite version")


def _score(metrics: dict) -> tuple[float, list[str]] | None:
    """(mean of the task's headline metrics, those metrics) from {metric: value or Summary}."""
    names = headline(list(metrics))
    if not names:
        return None
    values = [metrics[m][0] if isinstance(metrics[m], tuple) else metrics[m] for m in names]
    return mean(values), names


def ratio_to_teacher(student: float, teacher: float, metric: str) -> float | None:
    """1.0 at the teacher's level; below 1 worse than the teacher, whichever way the metric points."""
    if higher_is_better(metric):
        return student / teacher if teacher else None
    return teacher / student if student else None


def best_trivial(group: Group, task: str, names: list[str]) -> tuple[str, float] | None:
    """The trivial baseline closest to a good score on exactly `names` (baselines lacking one are skipped)."""
    found = [(name, mean(per_task[task][m] for m in names)) for name, per_task in group.trivial.items()
             if task in per_task and all(m in per_task[task] for m in names)]
    if not found:
        return None
    return (max if higher_is_better(names[0]) else min)(found, key=lambda item: item[1])


def version_state(suite: str, version: str) -> str:
    """"current" when the records' suite version is the suite file's, else what replaced it: the rows of an old
    version are a superseded budget (README "Students that learn"), kept until the current one has its seeds."""
    try:
        now = str(load_suite_file(suite).get("version", ""))
    except KdbenchError:
        return "–"  # a suite file that is not here (a plug-in's, a removed one)
    return "current" if now == str(version) else f"superseded (now v{now})"


def _fraction(counts: tuple[int, int] | None) -> str:
    return f"{counts[0]}/{counts[1]}" if counts else "–"


def above_trivial(task: str, row: MethodRow) -> str:
    """The "above it" cell, from the leaderboard's flags (kdbench.leaderboard._flag_trivial): "▽ no" when the
    row's 95% interval reaches the best trivial baseline, "? (1 seed)" when one seed's score is above it but has
    no interval, "yes" when the interval stays clear of it."""
    if task in row.below_trivial:
        return "▽ no"
    return "? (1 seed)" if task in row.one_seed_above else "yes"


def wall_seconds(runs: list[dict]) -> str:
    """The "wall s per run" cell: the mean record seconds; per device type, named, where any run trained on
    another device than a CPU ("cpu 2,777 (n=1) · cuda 40 (n=2)")."""
    by_device: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        by_device[device_type(r)].append(run_seconds(r))
    if list(by_device) == ["cpu"]:
        return f"{mean(by_device['cpu']):,.0f}"
    return " · ".join(f"{device} {mean(seconds):,.0f} (n={len(seconds)})" for device, seconds in sorted(by_device.items()))


def _row(group: Group, task: str, row: MethodRow, version: str) -> list[str] | None:
    scored = _score(row.tasks.get(task, {}))
    if scored is None:
        return None
    value, names = scored
    teacher = _score({m: v for m, v in group.teacher.get(task, {}).items() if m in names})
    ratio = ratio_to_teacher(value, teacher[0], names[0]) if teacher and len(teacher[1]) == len(names) else None
    trivial = best_trivial(group, task, names)
    learned = row.not_learned.get(task)
    return [group.title, task, row.method, str(len(row.runs)), f"{value:.3g} ({'/'.join(names)})",
            f"{teacher[0]:.3g}" if teacher else "–", f"{ratio:.2f}" if ratio is not None else "–",
            f"{trivial[0]} {trivial[1]:.3g}" if trivial else "–",
            above_trivial(task, row) if trivial else "–",
            f"{learned[1] - learned[0]}/{learned[1]}" if learned else "–", _fraction(row.improving.get(task)),
            "yes" if row.budget_bound else "no", wall_seconds(row.runs), version]


def status_rows(groups: list[Group]) -> list[list[str]]:
    """Every table's tasks and methods, in the leaderboard's order (none, kd, then the rest)."""
    rows = []
    for group in groups:
        version = version_state(*group.key[:2])  # once a table: it reads and parses the suite file
        rows += [cells for task in group.tasks for row in group.rows
                 if (cells := _row(group, task, row, version)) is not None]
    return rows


def render(groups: list[Group], generated: str) -> str:
    """The status table as markdown, with what its columns mean."""
    from kdbench.convergence import LEARNED_RULE, RULE

    lines = ["# Are the students trained?", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in status_rows(groups)]
    lines += ["", "÷ teacher: student ÷ teacher for higher-is-better scores, teacher ÷ student for lower-is-better"
                  " ones (perplexity, CER): 1.00 is the teacher's level. Above it: the row's 95% interval stays"
                  " clear of the best trivial baseline (▽: it reaches it; ? (1 seed): above it, but one seed has no"
                  " interval).",
              f"Learned k/n: k of the n runs learned ({LEARNED_RULE}); a score from a student that has not learned"
              " is not a result.",
              f"Still improving k/n: by the convergence rule ({RULE}). Budget-bound: the suite states that its"
              " students cannot plateau at this budget (its leaderboard gives the figures). Suite version: superseded"
              " rows come from an older budget of the suite and are removed once the current one has its seeds.",
              "", generated, ""]
    return "\n".join(lines)
