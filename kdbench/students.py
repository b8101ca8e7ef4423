"""Which records are the same trained student, and which are variants of one method.

Both the leaderboard and the CI gate count each student once (issue "Verdicts", item 5): a run repeated
with the same configuration and seed is one student, and the newest complete record of it wins. Keys
that only say where files live, where the run executed or how often it was watched do not make another
student, so a repeat with another `data_dir` path (CI's `../shared/data` against a sweep's absolute
path) is still a repeat. A method run with two parameter sets in one table is two rows, never one row
whose "seeds" mix the variants.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict

from kdbench.errors import KdbenchError
from kdbench.results import OPERATIONAL_KEYS, canonical_config

# Config keys that do not change the trained student: paths, placement, the validation cadence (scored in
# eval mode, no RNG drawn), and whether the exact dense teacher outputs were read from the cache or recomputed.
NOT_THE_STUDENT = frozenset(OPERATIONAL_KEYS) | {"data_dir", "device", "teacher_placement", "teacher_max_memory",
                                                 "teacher_cache", "eval_every"}
_ROW_KEYS = {"seed", "method"}  # what a table's row and its seeds already say


def _flat(config: dict, prefix: str = "") -> dict[str, str]:
    if not prefix:  # a key added later, at the value runs had before it existed, is no difference
        config = canonical_config(config)
    out = {}
    for key, value in config.items():
        if not prefix and key in NOT_THE_STUDENT:
            continue
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = json.dumps(value, sort_keys=True)
    return out


def student_key(config: dict) -> str:
    """sha256 of what determines the trained student: the config without NOT_THE_STUDENT."""
    return hashlib.sha256(json.dumps(_flat(config), sort_keys=True).encode()).hexdigest()


def trained_precision(record: dict) -> str:
    """The mixed precision the run actually trained in ("no" or e.g. "bf16"). `device=auto` is one config
    value for a CPU run in fp32 and a CUDA run under bf16 autocast, and those train different students."""
    return (record.get("device") or {}).get("mixed_precision") or "no"


def newest_per_student(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the newest record of each student, the older repeats), in the input order. One student: the same
    student_key and the same trained precision."""
    newest: dict[tuple[str, str], dict] = {}
    for r in sorted(records, key=lambda r: r["created_at"]):
        newest[(student_key(r["config"]), trained_precision(r))] = r
    kept = {id(r) for r in newest.values()}
    return [r for r in records if id(r) in kept], [r for r in records if id(r) not in kept]


def rows_by_variant(records: list[dict], suite: str | None = None) -> dict[str, list[dict]]:
    """Row label -> its records, oldest first. A method whose records differ in any other key gets one row
    per variant. With `suite`, the variant that `kdbench run suite=<suite> method=<m>` trains today keeps the
    plain name and the others are labelled by the keys where they differ from it: adding `kd` runs with
    `method.divergence=akl` beside a table's `kd` rows gives `kd` and `kd[divergence=akl]`, so the table's
    "vs kd" column still means the default kd. Without a suite (or where it no longer resolves), every variant
    is labelled by all the keys its method's records differ in: `kd[divergence=fkl]`, `kd[divergence=akl]`."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r["created_at"]):
        by_method[r["method"]].append(r)
    out: dict[str, list[dict]] = {}
    for method, runs in by_method.items():
        flats = [_flat(r["config"]) for r in runs]
        keys = sorted({k for f in flats for k in f} - _ROW_KEYS)
        differing = [k for k in keys if len({f.get(k) for f in flats}) > 1]
        default = _default_config(suite, method) if differing and suite else None
        for r, flat in zip(runs, flats):
            shown = [k for k in differing if default is None or flat.get(k) != default.get(k)]
            label = method
            if shown:
                label += "[" + ",".join(f"{k.removeprefix('method_params.')}={_show(flat.get(k))}" for k in shown) + "]"
            out.setdefault(label, []).append(r)
    return out


def _default_config(suite: str, method: str) -> dict[str, str] | None:
    """The flattened config `kdbench run suite=<suite> method=<method>` resolves to now, with no overrides and
    no environment; None where the suite file or the method is gone (a plug-in's, say)."""
    from kdbench.config import resolve

    try:
        return _flat(resolve({"suite": suite, "method": method}, environ={}).to_dict())
    except KdbenchError:
        return None


def _show(encoded: str | None) -> str:
    if encoded is None:
        return "unset"
    value = json.loads(encoded)
    return value if isinstance(value, str) else json.dumps(value)
