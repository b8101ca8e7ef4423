"""Result records: one self-describing JSON file per run, written atomically.

    results/<suite>/<method>-<UTC time>-<config hash>-<random>.json

A record holds everything needed to reproduce the run and to place it on a
leaderboard: the resolved config, suite version, teacher/student identities,
metrics {task: {metric: value}}, parameter counts, timings, versions and git commit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import secrets
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

from kdbench.errors import KdbenchError

SCHEMA_VERSION = 2  # 2: per-example outputs (examples_file) and diagnostics
REQUIRED = ("suite", "suite_version", "method", "method_params", "teacher", "student", "seed", "config",
            "metrics", "params", "timings", "versions", "git_commit", "created_at")


# Timings that are parts of `train_s`, not time beside it: the teacher's forward and the sampling of responses
# run inside a training step (kdbench.runner), so a run's total must not add them again.
INSIDE_TRAINING = ("teacher_forward_s", "generation_s")


def device_type(record: dict) -> str:
    """The kind of device a run trained on ("cpu", "cuda", "mps"), without its index; records without a device
    field come from the CPU."""
    return ((record.get("device") or {}).get("type") or "cpu").split(":")[0]


def run_seconds(record: dict) -> float:
    """A run's wall seconds from its record: the teacher (scores, fine-tuning), training, validation curve,
    scoring and diagnostics, each once."""
    return sum(v for k, v in record["timings"].items() if k not in INSIDE_TRAINING and isinstance(v, (int, float)))


# Where a run writes and how it checkpoints do not change its numbers: two configs that differ only here
# are the same experiment (a sweep skips the cell; a checkpoint resumes across them). `precision` changes them
# only through what the run trains in, which `device=auto` changes too: the record states it
# (device.mixed_precision), and the sweep's "already done", the student's identity and the leaderboard's
# groups key on that (kdbench.students.trained_precision), so precision=fp32 on a GPU adds seeds to a CPU table.
OPERATIONAL_KEYS = ("results_dir", "cache_dir", "cache_max_gb", "dry_run", "resume", "checkpoint_every",
                    "save_student", "students_dir", "log_with", "push_to_hub", "precision")


# Config keys added after records had been written, each with the value every run before it had implicitly.
# A config that holds exactly that value is the same run as a record written before the key existed, so the
# sweep's "already done", the checkpoint key, the student's identity and the leaderboard's variants compare
# configs without it (otherwise adding a key re-runs every finished cell and splits every table's rows).
LATER_KEYS: dict[tuple[str, ...], object] = {
    ("student_init",): "pretrained",
    ("train", "keep"): "last",
    ("teacher_train", "keep"): "last",
    ("train", "schedule"): "linear",
    ("teacher_train", "schedule"): "linear",
    ("method_params", "mu"): 0.5,  # kd's and rlkd's AKL and ABKD parameters (kdbench.methods.kd.DivergenceParams)
    ("method_params", "ab_alpha"): 0.2,
    ("method_params", "ab_beta"): 0.7,
}


def canonical_config(config: dict) -> dict:
    """`config` without the LATER_KEYS that hold their implicit value (a copy; the input is not changed)."""
    out = dict(config)
    for path, implicit in LATER_KEYS.items():
        *parents, leaf = path
        node = out
        for name in parents:
            child = node.get(name)
            if not isinstance(child, dict):
                break
            node[name] = node = dict(child)
        else:
            if leaf in node and node[leaf] == implicit:
                del node[leaf]
    return out


def config_hash(config: dict) -> str:
    """sha256 of the resolved config without its OPERATIONAL_KEYS, keys added later compared as
    `canonical_config` says."""
    kept = {k: v for k, v in canonical_config(config).items() if k not in OPERATIONAL_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def new_run_id(method: str, config: dict) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{method}-{stamp}-{config_hash(config)[:8]}-{secrets.token_hex(4)}"


def reserve_record_path(folder: Path, method: str, config: dict) -> tuple[str, Path]:
    """A new run id whose record file this process alone owns.

    The file is created with O_EXCL, so two runs started in the same second with the same config (same
    stamp, same hash) can never share a record even if their random suffixes collide: the loser draws again.
    """
    for _ in range(1000):
        run_id = new_run_id(method, config)
        path = folder / f"{run_id}.json"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        except OSError as e:
            raise KdbenchError(f"cannot create a record in {folder}: {e.strerror or e}; pass a writable results_dir=")\
                from None
        return run_id, path
    raise RuntimeError(f"could not reserve a record name in {folder} after 1000 tries")


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A failure (disk full, read-only folder) leaves `path` as it was, removes the temporary file and
    raises one KdbenchError naming the file and the cause.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise KdbenchError(f"cannot write {path}: {e.strerror or e}; free disk space or choose a writable"
                           " results_dir= / cache_dir=") from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise


def write_record(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=False) + "\n")


def examples_file(record_path: Path) -> Path:
    """Where a run's per-example outputs go: <results>/<suite>/examples/<run_id>.json (not globbed as a record)."""
    return record_path.parent / "examples" / record_path.name


def write_examples(path: Path, examples: dict) -> None:
    """{task: {split: {metrics, references, predictions: {name: [...]}}}}, written atomically."""
    atomic_write_text(path, json.dumps(examples, separators=(",", ":")) + "\n")


def load_examples(record: dict) -> dict | None:
    """The per-example outputs of a loaded record, or None when it has none (older record, perplexity suite).
    Read once per file version: a leaderboard reads each file for its empty-output share and again for its
    comparisons. The dict is shared between callers, so treat it as read-only."""
    name = record.get("examples_file")
    if not name or "_path" not in record:
        return None
    path = Path(record["_path"]).parent / name
    try:
        stat = path.stat()
    except OSError:
        return None
    return _read_examples(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _read_examples(path: str, mtime_ns: int, size: int) -> dict | None:
    """The parsed file; mtime and size are in the key so that a rewritten file is read again."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("kdbench", "torch", "transformers", "accelerate", "datasets", "scikit-learn", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


# What a run executes or reads from the checkout. A change elsewhere (records and leaderboards under results/,
# the README, tests, benchmarks) does not change a student, so a sweep in a checkout whose result files
# moved is not "dirty"; one with an edited loss or suite file is.
CODE_PATHS = ("kdbench", "suites", "pyproject.toml")


def git_commit(root: Path | None = None) -> dict:
    """The commit of the kdbench checkout that ran, and whether its code (CODE_PATHS) had uncommitted changes.

    A copy of a working tree (a lent GPU machine; a container image) may have no git history, or history that
    lags the tree it got (measured 2026-12-04: the device copy's HEAD was the session's first commit while its
    files were two commits later, so every record said "dirty"). Whoever makes the copy names its commit in
    $KDBENCH_SOURCE_COMMIT; where that is not the copy's HEAD it wins, `declared` says so, `git_head` keeps
    what git saw, and `dirty` compares the code with the declared commit if the copy holds it, else stays
    unknown (None)."""
    root = root or Path(__file__).resolve().parent.parent
    declared = os.environ.get("KDBENCH_SOURCE_COMMIT", "").strip()
    head = _git(root, "rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return {"sha": declared, "dirty": None, "declared": True} if declared else {"sha": None, "dirty": None}
    sha = head.stdout.strip()
    if declared and declared != sha:
        held = _git(root, "cat-file", "-e", f"{declared}^{{commit}}")
        diff = _git(root, "diff", "--name-only", declared, "--", *CODE_PATHS) if held and held.returncode == 0 else None
        dirty = bool(diff.stdout.strip()) if diff is not None and diff.returncode == 0 else None
        return {"sha": declared, "dirty": dirty, "declared": True, "git_head": sha}
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return {"sha": sha, "dirty": bool(status.stdout.strip()) if status is not None else None}


def _git(root: Path, *args):
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None


def load_records(results_dir: Path, suite: str | None = None) -> tuple[list[dict], list[str]]:
    """Valid records under results_dir (optionally one suite), and a note for each file skipped."""
    records, skipped = [], []
    pattern = f"{suite}/*.json" if suite else "*/*.json"
    for path in sorted(Path(results_dir).glob(pattern)):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            skipped.append(f"{path}: unreadable ({type(e).__name__})")
            continue
        missing = [k for k in REQUIRED if k not in record] if isinstance(record, dict) else list(REQUIRED)
        if missing:
            skipped.append(f"{path}: not a kdbench record (missing {', '.join(missing)})")
            continue
        record["_path"] = str(path)
        records.append(record)
    return records, skipped
