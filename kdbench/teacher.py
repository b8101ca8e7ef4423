"""Fine-tune the teacher once per task, score it once per eval setting, and cache both.

Two entries, two content keys, so that suites sharing a task's training data
(`bleu` and `cer` both on Multi30k) share one fine-tuned teacher:

- weights: <cache_dir>/teachers/<task>-<key>/ with the HF model files and
  meta.json. The key covers what changes the fine-tuned weights: the teacher's
  identity and weights hash, the task, its label count, the training data hash,
  the training row limit, the whole `teacher_train` budget (seed included) and
  the recipe version below. Written only when the teacher is fine-tuned.
- scores: <cache_dir>/teacher_scores/<task>-<key>.json. The key is the weights
  key plus what changes the scores: the suite, the eval data hashes, the eval
  row limit, the `eval` settings and the length the teacher is scored at.

A changed input is a different key, so a stale teacher is never reused. Both
are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from kdbench.files import file_sha256, replace_folder
from kdbench.results import atomic_write_text

RECIPE_VERSION = 3  # bump when the fine-tuning procedure changes (2: fused AdamW; 3: the validation slice
# is held out of the training data, top_layers)


def teacher_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def weights_key_parts(cfg, identity: dict, data) -> dict:
    """What shapes the fine-tuned teacher's weights; `data` is the suite's task data."""
    return {
        "recipe": RECIPE_VERSION,
        "teacher": identity,
        "task": data.name,
        "num_labels": data.num_labels,
        "train_data": data.train.sha256,
        "max_train_examples": cfg.data.max_train_examples,
        "val_examples": cfg.data.val_examples,  # held out of the training data (text suites cut it from the text)
        "teacher_train": dataclasses.asdict(cfg.teacher_train),
    }


def key_parts(cfg, identity: dict, data) -> dict:
    """What shapes the teacher's scores: its weights key parts plus the eval side."""
    return {
        **weights_key_parts(cfg, identity, data),
        "suite": cfg.suite,
        "eval_data": {name: split.sha256 for name, split in data.evals.items()},
        "max_eval_examples": cfg.data.max_eval_examples,
        "eval": dataclasses.asdict(cfg.eval),
        "eval_max_length": cfg.train.max_length,
    }


def scores_file(cache_dir: Path, task_name: str, parts: dict) -> Path:
    return cache_dir / "teacher_scores" / f"{task_name}-{teacher_key(parts)}.json"


def load_scores(path: Path) -> dict | None:
    """The cached score entry, or None when there is none (or it is unreadable: it is then recomputed)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def save_scores(path: Path, entry: dict) -> None:
    atomic_write_text(path, json.dumps(entry, indent=2))  # temporary file, fsync, rename


def cached_teacher_dir(cache_dir: Path, task_name: str, parts: dict) -> Path:
    return cache_dir / "teachers" / f"{task_name}-{teacher_key(parts)}"


def damage(path: Path, meta: dict) -> str | None:
    """What is wrong with an entry's files against the sizes and sha256 in its meta.json (None: intact).

    Entries written before meta.json listed its files carry no hashes and are taken as they are.
    """
    for name, expected in meta.get("files", {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != expected["bytes"]:
            return f"{name} has {file.stat().st_size} bytes, {expected['bytes']} were written"
        if file_sha256(file) != expected["sha256"]:
            return f"{name} does not match its sha256"
    return None


def load_cached(path: Path, log=print):
    """(model, meta) from a complete, intact fine-tuned-weights entry, or None when there is none.

    A damaged entry (a file truncated or altered after it was written) is reported, removed and
    treated as a miss, so the caller rebuilds it; it is never loaded.
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    meta_file = path / "meta.json"
    if not meta_file.is_file() or not (path / "config.json").is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        meta = {"files": {"meta.json": {"bytes": -1, "sha256": ""}}}
    problem = damage(path, meta)
    if problem is not None:
        log(f"cached teacher {path} is damaged ({problem}): rebuilding it")
        shutil.rmtree(path, ignore_errors=True)
        return None
    archs = json.loads((path / "config.json").read_text()).get("architectures") or []
    loader = AutoModelForCausalLM if any(a.endswith("ForCausalLM") for a in archs) else (
        AutoModelForSequenceClassification if any(a.endswith("ForSequenceClassification") for a in archs) else AutoModel)
    return loader.from_pretrained(path), meta


def save(path: Path, model, meta: dict) -> None:
    """Write the weights entry under a temporary name, then rename: a reader never sees half an entry."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.time_ns()}")
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    files = {f.name: {"bytes": f.stat().st_size, "sha256": file_sha256(f)} for f in sorted(tmp.iterdir()) if f.is_file()}
    (tmp / "meta.json").write_text(json.dumps({**meta, "files": files}, indent=2))
    replace_folder(tmp, path)
