"""Fine-tune the teacher once per task and cache it under a content key.

The key covers everything that changes the fine-tuned weights or their scores:
the teacher's identity and weights hash, the task, the hashes of the training
and eval data, the row limits, the whole `teacher_train` budget (seed
included) and the recipe version below. A changed input is a different key,
so a stale teacher is never reused.

Cache layout: <cache_dir>/teachers/<task>-<key>/ with the HF model files and
meta.json (key parts, dev metrics, fine-tuning time). The folder is written
under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path

RECIPE_VERSION = 1  # bump when the fine-tuning procedure changes


def teacher_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def key_parts(cfg, identity: dict, data) -> dict:
    """Everything that shapes the cached teacher and its scores; `data` is the suite's task data."""
    return {
        "recipe": RECIPE_VERSION,
        "suite": cfg.suite,
        "teacher": identity,
        "task": data.name,
        "num_labels": data.num_labels,
        "train_data": data.train.sha256,
        "eval_data": {name: split.sha256 for name, split in data.evals.items()},
        "max_train_examples": cfg.data.max_train_examples,
        "max_eval_examples": cfg.data.max_eval_examples,
        "teacher_train": dataclasses.asdict(cfg.teacher_train),
        "eval": dataclasses.asdict(cfg.eval),
        "eval_max_length": cfg.train.max_length,
    }


def cached_teacher_dir(cache_dir: Path, task_name: str, parts: dict) -> Path:
    return cache_dir / "teachers" / f"{task_name}-{teacher_key(parts)}"


def load_cached(path: Path):
    """(model or None, meta) from a complete cache entry, or None when there is none.

    The model is None when the entry holds only scores (a teacher used as given).
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    meta_file = path / "meta.json"
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text())
    if not (path / "config.json").is_file():
        return None, meta
    archs = json.loads((path / "config.json").read_text()).get("architectures") or []
    loader = AutoModelForCausalLM if any(a.endswith("ForCausalLM") for a in archs) else (
        AutoModelForSequenceClassification if any(a.endswith("ForSequenceClassification") for a in archs) else AutoModel)
    return loader.from_pretrained(path), meta


def save(path: Path, model, meta: dict) -> None:
    """Write the entry under a temporary name, then rename: a reader never sees half an entry."""
    tmp = path.with_name(f".{path.name}.tmp-{time.time_ns()}")
    tmp.mkdir(parents=True)
    if model is not None:
        model.save_pretrained(tmp)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
