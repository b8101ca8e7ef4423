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


def key_parts(cfg, identity: dict, task, data) -> dict:
    return {
        "recipe": RECIPE_VERSION,
        "teacher": identity,
        "task": task.name,
        "num_labels": task.num_labels,
        "train_data": data.train.sha256,
        "eval_data": {name: split.sha256 for name, split in data.evals.items()},
        "max_train_examples": cfg.data.max_train_examples,
        "max_eval_examples": cfg.data.max_eval_examples,
        "teacher_train": dataclasses.asdict(cfg.teacher_train),
    }


def cached_teacher_dir(cache_dir: Path, task_name: str, parts: dict) -> Path:
    return cache_dir / "teachers" / f"{task_name}-{teacher_key(parts)}"


def load_cached(path: Path):
    """(model, meta) from a complete cache entry, or None."""
    from transformers import AutoModelForSequenceClassification

    meta_file = path / "meta.json"
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text())
    model = AutoModelForSequenceClassification.from_pretrained(path)
    return model, meta


def save(path: Path, model, meta: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{time.time_ns()}")
    model.save_pretrained(tmp)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
