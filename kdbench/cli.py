"""The `kdbench` command: `run`, `sweep`, `calibrate`, `ls`, `leaderboard`, `study`, `check` and `cache`,
configured with `key=value` overrides.

    kdbench run suite=glue method=rlkd tasks=[sst2,rte] train.max_steps=200 method.k=2
    kdbench sweep suite=glue methods=[none,kd,rlkd,fakd] seeds=[0,1,2]
    kdbench ls
    kdbench leaderboard suite=glue
    kdbench study file=studies/published_effects.toml
    kdbench check results_dir=results baselines_dir=baselines

Errors the user can fix print one line and exit 2; nothing loads before the
config is valid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kdbench.config import DEFAULT_RESULTS_DIR
from kdbench.errors import KdbenchError
from kdbench.registry import did_you_mean
from kdbench.stop_signals import handle_stop_signals

USAGE = """usage: kdbench COMMAND [key=value ...]

commands:
  run           train a student with a method and score it on a suite
  sweep         the grid methods=[...] x seeds=[...] of runs (skips cells already recorded)
  calibrate     choose a suite's student (and teacher) budget from validation curves of method=none
  ls            list methods, suites, tasks and model presets
  leaderboard   methods x tasks with 95% CIs, seed-aware differences (Holm-adjusted p) and costs: terminal,
                Markdown, CSV, HTML, PNG
  study         published claims (a study TOML) measured on the sweeps, with computed verdicts: STUDY.md
  check         the regression gate: newest results against baselines/ (exit 1 on a regression)
  cache         `cache ls`: the cache's entries, sizes on disk, last use; `cache prune max_gb=N`: evict the least
                recently used entries (never one in use) until the cache holds at most N GB

{suites}

run keys (defaults from suites/<suite>.toml, then the code):
  suite=glue            suite file under suites/          method=kd (kdbench ls methods)
  tasks=[sst2,rte]      tasks (default: the suite's)       seed=0
  teacher=NAME|PATH     model preset, local folder or hub id
  student=NAME|PATH     model preset, local folder or hub id
  train.max_steps  train.batch_size  train.grad_accum  train.lr  train.max_length  train.weight_decay
  train.warmup_ratio  train.schedule=linear|constant|cosine  train.grad_clip  train.log_every
  teacher_train.max_steps (teacher fine-tuning budget; 0 = use as is)  teacher_train.lr  teacher_train.seed ...
  data_dir=PATH         data root (default $KDBENCH_DATA_DIR)
  results_dir=runs      your records, leaderboards, students (git ignores runs/; the published ones: results/)
  cache_dir=PATH        fine-tuned teachers and caches (default $KDBENCH_CACHE_DIR or ~/.cache/kdbench)
  cache_max_gb=N        bound the cache: evict least recently used entries before and after the run (0 = none)
  include=[my_method.py]  plug-in files defining methods/suites/metrics (any command; also the entry-point
                        group kdbench.plugins of installed packages)
  data.max_train_examples=N  data.max_eval_examples=N  data.padding_side=right|left  eval.batch_size=N
  eval.window=512 eval.stride=256 eval.max_tokens=N  (perplexity sliding window)
  device=auto|cpu|cuda  dry_run=true
  save_student=true|false  keep the trained student (default true for run, false for sweep)  students_dir=PATH
  log_with=[tensorboard|wandb|mlflow|trackio]  experiment trackers   push_to_hub=USER/REPO  upload the student
  method.<param>=VALUE  the method's parameters (kdbench ls methods), e.g. method.k=15 method.temperature=2

sweep keys: methods=[none,kd,rlkd,fakd] seeds=[0,1,2] and any run key (method.* keys reach the methods that take them)
calibrate keys: lrs=[1e-4,3e-4] steps=N teacher_steps=N teacher_lrs=[...] points=20 and any run key
leaderboard keys: suite=glue results_dir=runs allow_dirty=false
status keys: suite=glue results_dir=runs allow_dirty=false out=STATUS.md  (are the students trained? per table,
  task and method: ÷ teacher, the best trivial baseline, learned and still-improving runs, seeds, wall time)
study keys: file=studies/published_effects.toml results_dir=runs out=<results_dir>/STUDY.md run=false allow_dirty=false
  (run=true first runs each claim's sweep; data_dir= and cache_dir= reach it)
check keys: results_dir=runs baselines_dir=baselines suite=NAME record=true floor=1.0 rel_floor=0.05 strict=false
  study=studies/ci.toml (also fail when a claim's verdict differs from baselines/study-ci.json)
"""

def usage() -> str:
    """USAGE with the suites that exist (the suite files under suites/ and KDBENCH_SUITES_DIR), never a
    hand-written subset."""
    import textwrap

    from kdbench.config import suite_names

    suites = textwrap.fill("suites: " + ", ".join(suite_names()) + " (`kdbench ls suites` describes each)",
                           width=110, subsequent_indent="  ")
    return USAGE.replace("{suites}", suites)


COMMANDS = ("run", "sweep", "calibrate", "ls", "leaderboard", "status", "study", "check", "cache")


MPI_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


def cpu_launch_note(environ=None) -> str | None:
    """A line for a person who ran `accelerate launch --cpu --num_processes N` (N > 1) without mpirun.

    accelerate 1.15 starts ONE process then (its multi-CPU launcher is mpirun, via --mpirun_hostfile) and
    only sets MASTER_ADDR; nothing else says so, and the run would quietly train in one process.
    """
    import os

    env = os.environ if environ is None else environ
    if env.get("ACCELERATE_USE_CPU", "").lower() not in ("true", "1", "yes"):
        return None
    if "MASTER_ADDR" not in env or "WORLD_SIZE" in env or any(v in env for v in MPI_RANK_VARS):
        return None
    return ("note: `accelerate launch --cpu` started one process (its multi-CPU launcher needs mpirun:"
            " --mpirun_hostfile), so this run trains in one process. For N processes over gloo:"
            " ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes N -m kdbench run ...")


def _launch_note() -> None:
    note = cpu_launch_note()
    if note:
        print(note, file=sys.stderr)


def _cmd_run(args: list[str]) -> int:
    from kdbench.config import parse_overrides, resolve
    from kdbench.experiment import validate

    _launch_note()
    cfg = resolve(parse_overrides(args))
    tasks = validate(cfg)
    if cfg.dry_run:
        print(json.dumps({**cfg.to_dict(), "tasks": tasks}, indent=2))
        family = cfg.suite_info.family
        if family:
            from kdbench.dryrun import dry_check

            print(dry_check(cfg, family))
        return 0
    from kdbench.experiment import run

    path = run(cfg)
    if path is not None:  # None: a non-main process of a distributed run
        print(f"record: {path}")
    return 0


def _cmd_sweep(args: list[str]) -> int:
    from kdbench.config import parse_overrides
    from kdbench.sweep import sweep

    _launch_note()
    summary = sweep(parse_overrides(args))
    print(f"sweep: {len(summary['ran'])} cells ran, {len(summary['skipped'])} skipped (complete records exist),"
          f" {summary['seconds']:.0f} s")
    for cell in summary["ran"]:
        print(f"  {cell['cell']:24} {cell['seconds']:8.1f} s  {cell['record']}")
    return 0


def _cmd_ls(args: list[str]) -> int:
    import dataclasses

    import kdbench.methods  # noqa: F401
    import kdbench.models.presets  # noqa: F401
    from kdbench.config import load_suite_file, suite_names
    from kdbench.registry import METHODS, MODELS

    what = args[0] if args else "all"
    sections = ("methods", "suites", "tasks", "models")
    if what not in sections + ("all",):
        raise KdbenchError(f"unknown listing {what!r}; {did_you_mean(what, list(sections))}")
    if what in ("methods", "all"):
        print("methods:")
        for name, method in METHODS:
            params = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(method.params))
            print(f"  {name:6} {method.summary}")
            if params:
                print(f"         method.* params: {params}")
    if what in ("suites", "all"):
        print("suites:")
        for name in suite_names():
            info = load_suite_file(name)
            print(f"  {name:10} v{info.get('version')}  default tasks {info.get('tasks')}  {info.get('description', '')}")
    if what in ("tasks", "all"):
        import kdbench.suites  # noqa: F401  (registers the suite kinds)
        from kdbench.registry import SUITE_KINDS

        for kind, suite_cls in SUITE_KINDS:
            suite = suite_cls()
            print(f"tasks (suite kind {kind}):")
            for name in suite.task_names():
                print(f"  {name:10} metrics: {', '.join(suite.task_metrics(name))}")
    if what in ("models", "all"):
        print("model presets (any local model folder or hub id also works):")
        for name, preset in MODELS:
            print(f"  {name:14} {preset.summary}")
    return 0


def _keys(values: dict, allowed: tuple, command: str) -> None:
    for key in values:
        if key not in allowed:
            raise KdbenchError(f"unknown key {key!r} for {command}; {did_you_mean(key, list(allowed))}")


def _results_dir(values: dict) -> Path:
    results_dir = Path(values.get("results_dir", DEFAULT_RESULTS_DIR))
    if not results_dir.is_dir():
        raise KdbenchError(f"results_dir {results_dir} does not exist; run `kdbench run ...` first or pass results_dir=")
    return results_dir


def _groups(values: dict, compare: bool = True) -> tuple[list, list[str]]:
    """The leaderboard groups that `suite`, `results_dir` and `allow_dirty` select (kdbench.leaderboard.collect),
    refusing a suite name that would escape results_dir and an empty selection."""
    from kdbench.config import check_name, convert
    from kdbench.leaderboard import collect

    suite = values.get("suite")
    if suite is not None:  # a name that would escape results_dir is refused first, whatever the folder holds
        check_name("suite", suite)
    results_dir = _results_dir(values)
    groups, skipped = collect(results_dir, suite, convert("allow_dirty", values.get("allow_dirty", "false"), bool),
                              compare)
    if not groups:
        raise KdbenchError(f"no complete result records under {results_dir}" + (f"/{suite}" if suite else ""))
    return groups, skipped


def _cmd_leaderboard(args: list[str]) -> int:
    import time

    from kdbench.config import parse_overrides
    from kdbench.leaderboard_render import section, terminal, write_all
    from kdbench.stale import unfinished

    values = parse_overrides(args)
    _keys(values, ("suite", "results_dir", "allow_dirty"), "leaderboard")
    groups, skipped = _groups(values)
    suite, results_dir = values.get("suite"), _results_dir(values)
    print(terminal([section(g) for g in groups]))
    for note in skipped:
        print(f"left out: {note}", file=sys.stderr)
    if (count := unfinished(results_dir, suite)) is not None:
        print(count)
    generated = f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `kdbench leaderboard` from {results_dir}."
    for fmt, path in write_all(groups, skipped, results_dir, suite or "all", generated).items():
        print(f"written ({fmt}): {path}", file=sys.stderr)
    return 0


def _cmd_status(args: list[str]) -> int:
    import time

    from kdbench.config import parse_overrides
    from kdbench.results import atomic_write_text
    from kdbench.training_status import render

    values = parse_overrides(args)
    _keys(values, ("suite", "results_dir", "allow_dirty", "out"), "status")
    groups, skipped = _groups(values, compare=False)
    results_dir = _results_dir(values)
    text = render(groups, f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `kdbench status"
                          f"{''.join(f' {k}={v}' for k, v in values.items())}` from {results_dir}.")
    print(text)
    for note in skipped:
        print(f"left out: {note}", file=sys.stderr)
    if values.get("out"):
        atomic_write_text(Path(values["out"]), text)
        print(f"written: {values['out']}", file=sys.stderr)
    return 0


def _cmd_check(args: list[str]) -> int:
    from kdbench.check import check, check_verdicts, record_baselines, record_verdicts, report
    from kdbench.config import check_name, convert, parse_overrides
    from kdbench.stale import unfinished
    from kdbench.study import load_study

    values = parse_overrides(args)
    _keys(values, ("results_dir", "baselines_dir", "suite", "record", "floor", "rel_floor", "study", "strict"), "check")
    suite = values.get("suite")
    if suite is not None:
        check_name("suite", suite)
    results_dir = _results_dir(values)
    baselines_dir = Path(values.get("baselines_dir", "baselines"))
    study_file = Path(values["study"]) if "study" in values else None
    if study_file is not None:
        load_study(study_file)  # a bad study file is a usage error, before anything is compared
    if convert("record", values.get("record", "false"), bool):
        for path in record_baselines(results_dir, baselines_dir, suite):
            print(f"baseline written: {path}")
        if study_file is not None:
            print(f"verdicts written: {record_verdicts(study_file, results_dir, baselines_dir)}")
        return 0
    skipped, not_gated = [], []
    strict = convert("strict", values.get("strict", "false"), bool)  # CI: a group without a baseline fails
    rows, problems = check(results_dir, baselines_dir, suite, floor=convert("floor", values.get("floor", "1.0"), float),
                           rel_floor=convert("rel_floor", values.get("rel_floor", "0.05"), float), skipped=skipped,
                           strict=strict, not_gated=not_gated)
    if study_file is not None:
        lines, flipped = check_verdicts(study_file, results_dir, baselines_dir)
        problems += flipped
        for line in lines:
            print(line)
    for note in skipped:
        print(f"left out: {note}", file=sys.stderr)
    for note in not_gated:
        print(f"not gated: {note} (strict=true makes this a failure)")
    if (count := unfinished(results_dir, suite)) is not None:
        print(count)
    print(report(rows, problems))
    return 1 if problems or any(r["status"] == "REGRESSED" for r in rows) else 0


def _cmd_study(args: list[str]) -> int:
    from kdbench.config import parse_overrides
    from kdbench.study import study

    study(parse_overrides(args))
    return 0


def _cmd_calibrate(args: list[str]) -> int:
    from kdbench.calibrate import calibrate
    from kdbench.config import parse_overrides

    calibrate(parse_overrides(args))
    return 0


def _cmd_cache(args: list[str]) -> int:
    from kdbench.cache_entries import GB, prune, table
    from kdbench.config import convert, parse_overrides
    from kdbench.models.load import default_cache_dir

    if not args or args[0] not in ("ls", "prune"):
        raise KdbenchError("kdbench cache needs ls or prune: `kdbench cache ls` or `kdbench cache prune max_gb=20`")
    action, values = args[0], parse_overrides(args[1:])
    _keys(values, ("cache_dir",) + (("max_gb",) if action == "prune" else ()), f"cache {action}")
    cache_dir = Path(values["cache_dir"]).expanduser() if values.get("cache_dir") else default_cache_dir()
    if not cache_dir.is_dir():
        raise KdbenchError(f"cache_dir {cache_dir} does not exist; pass cache_dir= (default $KDBENCH_CACHE_DIR or"
                           " ~/.cache/kdbench)")
    if action == "prune":
        if "max_gb" not in values:
            raise KdbenchError("kdbench cache prune needs max_gb=N (the size to shrink the cache to, in GB)")
        max_gb = convert("max_gb", values["max_gb"], float)
        if max_gb < 0:
            raise KdbenchError(f"max_gb must be >= 0, got {max_gb}")
        removed, busy = prune(cache_dir, int(max_gb * GB), log=print)
        print(f"cache prune: {len(removed)} entries evicted ({sum(e.bytes for e in removed) / GB:.2f} GB),"
              f" {len(busy)} in use kept")
    print(table(cache_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        try:
            print(usage())
        except BrokenPipeError:  # `kdbench --help | head`: the reader left, nothing is wrong
            pass
        return 0
    command, args = argv[0], argv[1:]
    handlers = {"run": _cmd_run, "sweep": _cmd_sweep, "calibrate": _cmd_calibrate, "ls": _cmd_ls,
                "leaderboard": _cmd_leaderboard, "status": _cmd_status, "study": _cmd_study, "check": _cmd_check, "cache": _cmd_cache}
    try:
        if command not in handlers:
            raise KdbenchError(f"unknown command {command!r}; {did_you_mean(command, list(COMMANDS))}")
        from kdbench.plugins import load, split_include

        files, args = split_include(args)
        load(files)  # before any config is read: a plug-in's methods and suites are then built-ins
        if command in ("run", "sweep", "calibrate", "study"):  # SIGTERM/SIGINT: finish the step, checkpoint, mark the record
            from kdbench.hub_probe import ensure_reachable_or_offline

            ensure_reachable_or_offline(lambda line: print(line, file=sys.stderr))  # unreachable: offline, no retries
            with handle_stop_signals():
                return handlers[command](args)
        return handlers[command](args)
    except KdbenchError as e:
        print(f"kdbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        print(f"kdbench: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        return getattr(e, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
