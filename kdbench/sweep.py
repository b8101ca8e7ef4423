"""`kdbench sweep`: the grid of methods × seeds on one suite, each cell one `run` with its own record.

    kdbench sweep suite=glue methods=[none,kd,rlkd,fakd] seeds=[0,1,2]

Every cell is validated before the first one trains. The teacher is loaded (or
fine-tuned) once and kept in memory for every cell. A cell whose complete record
(in the current record schema) already exists under results_dir for the same
resolved config is skipped, so a sweep that was stopped can be re-run to fill its gaps.
"""

from __future__ import annotations

import time
from pathlib import Path

from kdbench.config import RunConfig, parse_list, resolve
from kdbench.errors import KdbenchError
from kdbench.results import SCHEMA_VERSION, config_hash, load_records
from kdbench.students import trained_precision

SWEEP_KEYS = ("methods", "seeds")


def plan(overrides: dict[str, str], environ=None) -> list[RunConfig]:
    """One resolved, validated config per (method, seed) cell, in grid order."""
    from kdbench.experiment import validate

    for key in ("method", "seed"):
        if key in overrides:
            raise KdbenchError(f"a sweep takes {key}s=[...], not {key}=; e.g. {key}s=[{overrides[key]}]")
    # a sweep's students are many and interchangeable: kept only when asked (save_student=true)
    rest = {"save_student": "false", **{k: v for k, v in overrides.items() if k not in SWEEP_KEYS}}
    methods = parse_list(overrides["methods"], "methods") if "methods" in overrides else default_methods(
        overrides.get("suite", "glue"))
    seeds = parse_list(overrides.get("seeds", "[0]"), "seeds")
    if not methods or not seeds:
        raise KdbenchError("a sweep needs at least one method and one seed, e.g. methods=[kd] seeds=[0]")
    cells = []
    for method in methods:
        for seed in seeds:
            cfg = resolve({**_params_for(method, rest, methods), "method": method, "seed": seed}, environ=environ)
            validate(cfg)
            cells.append(cfg)
    return cells


def default_methods(suite: str) -> list[str]:
    """The suite file's `methods` (the methods that apply there), else none, kd, rlkd and fakd."""
    from kdbench.config import SuiteInfo

    return list(SuiteInfo.load(suite).methods) or ["none", "kd", "rlkd", "fakd"]


def _params_for(method: str, overrides: dict[str, str], methods: list[str]) -> dict[str, str]:
    """The overrides with only the method.* keys this method takes: method.k=2 reaches rlkd, not none."""
    import dataclasses

    import kdbench.methods  # noqa: F401  (registers the methods)
    from kdbench.registry import METHODS

    def takes(name: str, key: str) -> bool:
        return name in METHODS.names() and key in {f.name for f in dataclasses.fields(METHODS.get(name).params)}

    out = {}
    for key, value in overrides.items():
        if key.startswith("method."):
            param = key.split(".", 1)[1]
            if not any(takes(m, param) for m in methods):
                raise KdbenchError(f"{key}: none of the sweep's methods {methods} takes a parameter {param!r}")
            if not takes(method, param):
                continue
        out[key] = value
    return out


def done_configs(results_dir: Path, suite: str) -> set[tuple[str, str]]:
    """(config hash, trained precision) of the complete records already under results_dir/suite, in the
    current record schema (an older record lacks what the leaderboard needs, e.g. per-example outputs, so its
    cell runs again). The precision makes a CPU record not count as done for a sweep on a GPU (bf16)."""
    records, _ = load_records(results_dir, suite)
    return {(config_hash(r["config"]), trained_precision(r)) for r in records
            if r.get("status") == "complete" and r.get("schema_version") == SCHEMA_VERSION}


def sweep(overrides: dict[str, str], log=print, environ=None) -> dict:
    """Run every cell that has no complete record yet; returns a summary of what ran and how long it took."""
    from kdbench.experiment import run
    from kdbench.runner import mixed_precision_for

    cells = plan(overrides, environ)
    done = done_configs(Path(cells[0].results_dir), cells[0].suite)
    teachers: dict = {}  # one teacher in memory for the whole grid
    summary = {"cells": len(cells), "ran": [], "skipped": [], "seconds": 0.0}
    start = time.perf_counter()
    for i, cfg in enumerate(cells, start=1):
        label = f"{cfg.method} seed={cfg.seed}"
        if (config_hash(cfg.to_dict()), mixed_precision_for(cfg.device, cfg.precision)) in done:
            log(f"[{i}/{len(cells)}] {label}: a complete record exists, skipped")
            summary["skipped"].append(label)
            continue
        log(f"[{i}/{len(cells)}] {label}")
        cell_start = time.perf_counter()
        path = run(cfg, log=log, teachers=teachers)
        summary["ran"].append({"cell": label, "record": str(path), "seconds": round(time.perf_counter() - cell_start, 1)})
    summary["seconds"] = round(time.perf_counter() - start, 1)
    return summary
