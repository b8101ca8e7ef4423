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

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import torch

from kdbench.cache_entries import hold
from kdbench.checkpoint import Checkpointer
from kdbench.convergence import curve_entry
from kdbench.distiller import Distiller
from kdbench.files import file_sha256, replace_folder
from kdbench.locks import file_lock
from kdbench.models.load import cache_root, freeze_below_top, model_identity
from kdbench.models.placement import place_teacher
from kdbench.registry import METHODS
from kdbench.results import atomic_write_text, canonical_config
from kdbench.runner import mixed_precision_for, train
from kdbench.validation import validator

RECIPE_VERSION = 3  # bump when the fine-tuning procedure changes (2: fused AdamW; 3: the validation slice
# is held out of the training data, top_layers)


def teacher_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def training_task(data) -> str:
    """The name the fine-tuned teacher is cached under: the task whose training data it learnt from, which tasks
    sharing one training set (the MiniLLM sets, all on Dolly) share, so it is fine-tuned once for all of them."""
    return getattr(data, "train_name", "") or data.name


def weights_key_parts(cfg, identity: dict, data) -> dict:
    """What shapes the fine-tuned teacher's weights; `data` is the suite's task data."""
    return {
        "recipe": RECIPE_VERSION,
        "teacher": identity,
        "task": training_task(data),
        "num_labels": data.num_labels,
        "train_data": data.train.sha256,
        "max_train_examples": cfg.data.max_train_examples,
        "val_examples": cfg.data.val_examples,  # held out of the training data (text suites cut it from the text)
        "teacher_train": _budget(cfg.teacher_train),
        # a teacher fine-tuned (and run) under bf16 autocast is another teacher than the fp32 one; fp32
        # teachers keep the keys they had before the precision was part of it
        **_trained_precision(cfg),
    }


def _trained_precision(cfg) -> dict:
    mixed = mixed_precision_for(cfg.device, cfg.precision)
    return {} if mixed == "no" else {"mixed_precision": mixed}


def _budget(train_cfg) -> dict:
    """The fine-tuning budget as the key sees it. Keys that came later (keep, schedule) stay out at the value
    teachers had before them (`kdbench.results.LATER_KEYS`), so teachers cached before them keep their keys."""
    return canonical_config({"teacher_train": dataclasses.asdict(train_cfg)})["teacher_train"]


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


def save(path: Path, model, meta: dict) -> dict:
    """Write the weights entry under a temporary name, then rename: a reader never sees half an entry.
    Returns its files' sizes and sha256 (as meta.json lists them)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.time_ns()}")
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    files = {f.name: {"bytes": f.stat().st_size, "sha256": file_sha256(f)} for f in sorted(tmp.iterdir()) if f.is_file()}
    (tmp / "meta.json").write_text(json.dumps({**meta, "files": files}, indent=2))
    replace_folder(tmp, path)
    return files


def weights_fingerprint(files: dict) -> str | None:
    """The fine-tuned teacher's identity: the sha256 of its one weights file (what `sha256sum` prints), or of
    the JSON {name: sha256} of several shards; None for an entry written before meta.json listed its files.

    Records keep it because fine-tuning is not bit-reproducible across machines: the same key trained with
    1 and with 2 threads gives different weights after 30 steps (reduction order), and a cache rebuilt on
    another machine is another teacher. The leaderboard says when a table mixes them."""
    shards = {name: f["sha256"] for name, f in files.items() if name.endswith((".safetensors", ".bin"))}
    if not shards:
        return None
    if len(shards) == 1:
        return next(iter(shards.values()))
    return hashlib.sha256(json.dumps(shards, sort_keys=True).encode()).hexdigest()


def teacher_for_task(cfg, suite, data, tokenizer, accelerator, log, loaded: dict):
    """The teacher for this task: fine-tuned once (or used as given) and scored once, both cached.

    `loaded` maps weights keys to models already in memory (a sweep's later cells reuse them). Returns
    (model, meta); meta holds the scores, the key parts and whether each came from the cache.
    """
    identity = model_identity(cfg.teacher, cfg.cache_dir or None)
    cache_dir = cache_root(cfg)
    start = time.perf_counter()
    weights_key = teacher_key(weights_key_parts(cfg, identity, data))
    if weights_key in loaded:  # a sweep's later cells reuse the teacher already in memory
        model, train_meta = loaded[weights_key]
        log(f"[{data.name}] teacher reused from memory")
    else:
        model, train_meta = _teacher_weights(cfg, suite, data, tokenizer, accelerator, log, identity, cache_dir)
        model = place_teacher(model, cfg.teacher_placement, cfg.teacher_max_memory, cache_dir / "offload",
                              accelerator.device, lambda m: log(f"[{data.name}] {m}"))
        loaded[weights_key] = (model, train_meta)
    parts = key_parts(cfg, identity, data)
    path = scores_file(cache_dir, data.name, parts)
    hold(path)

    def complete(entry):  # scores of the suite's present metrics (it may have changed them), or None
        return entry if entry is not None and suite.scores_complete(data.name, entry["metrics"]) else None

    entry = complete(load_scores(path))
    cached = entry is not None
    if not cached:
        with file_lock(path.with_name(f".{path.name}.lock"), log):  # concurrent runs score the teacher once
            entry = complete(load_scores(path))
            cached = entry is not None
            if not cached:
                scores, _ = suite.evaluate(model, tokenizer, data, cfg, accelerator.device)
                entry = {"key_parts": parts, "metrics": scores}
                save_scores(path, entry)
                log(f"[{data.name}] teacher {format_scores(scores)}, scores cached in {path}")
    if cached:
        log(f"[{data.name}] teacher scores from cache {path} ({format_scores(entry['metrics'])})")
    return model, {**train_meta, **entry, "cached": cached, "seconds": time.perf_counter() - start}


TEACHER_META = ("train_seconds", "steps", "loss_curve", "curve")  # what a run's record keeps of the teacher's fine-tuning


def _teacher_weights(cfg, suite, data, tokenizer, accelerator, log, identity, cache_dir):
    """The teacher model and its fine-tuning meta; fine-tuned weights are cached (as given: nothing to cache)."""
    model_cache = cfg.cache_dir or None
    if cfg.teacher_train.max_steps == 0:
        return suite.build_model(cfg.teacher, data, cfg.teacher_train.seed, model_cache), {
            "train_seconds": 0.0, "steps": 0, "loss_curve": [], "curve": None,
            "weights_sha256": identity.get("weights_sha256")}
    parts = weights_key_parts(cfg, identity, data)
    path = cached_teacher_dir(cache_dir, training_task(data), parts)
    hold(path)
    # Concurrent runs fine-tune the teacher once. The processes of one distributed run fine-tune it together
    # (a lock would leave the others out of the collective step), and only the main process saves it.
    lock = file_lock(path.with_name(f".{path.name}.lock"), log) if accelerator.num_processes == 1 else contextlib.nullcontext()
    with lock:
        return _fine_tuned_teacher(cfg, suite, data, tokenizer, accelerator, log, parts, path)


def _fine_tuned_teacher(cfg, suite, data, tokenizer, accelerator, log, parts: dict, path: Path):
    cached = load_cached(path, log)
    if cached is not None:
        model, meta = cached
        model = suite.adapt(model)  # e.g. the causal-LM GLUE form's answer position
        log(f"[{data.name}] fine-tuned teacher from cache {path}")
        return model, {**{k: meta.get(k) for k in TEACHER_META}, "weights_sha256": weights_fingerprint(meta.get("files", {}))}
    model_cache = cfg.cache_dir or None
    model = suite.build_model(cfg.teacher, data, cfg.teacher_train.seed, model_cache)
    if cfg.teacher_train.top_layers:
        freeze_below_top(model, cfg.teacher_train.top_layers)
    log(f"[{data.name}] fine-tuning teacher {cfg.teacher} for {cfg.teacher_train.max_steps} steps (cached afterwards)")
    torch.manual_seed(cfg.teacher_train.seed)
    loader = suite.train_loader(tokenizer, data, cfg.teacher_train.max_length, cfg.teacher_train.batch_size,
                                cfg.teacher_train.seed, cfg.data.padding_side)
    none = METHODS.get("none")
    # Checkpointed like a student's training: a fine-tuning killed midway resumes where it stopped. The
    # folder is keyed by the teacher's weights key; the caller holds the teacher's lock, this its own.
    checkpoint = Checkpointer(cache_root(cfg) / "checkpoints" / f"teacher-{path.name}", cfg.checkpoint_every,
                              cfg.resume)
    with file_lock(checkpoint.folder.with_name(f".{checkpoint.folder.name}.lock"), log) \
            if accelerator.is_main_process else contextlib.nullcontext():
        stats = train(model, Distiller(none, none.make_params({})), loader, cfg.teacher_train, accelerator,
                      regression=data.regression, desc=f"teacher {data.name}", checkpoint=checkpoint, log=log,
                      validate=validator(suite, tokenizer, data, cfg, accelerator.device), eval_every=cfg.eval_every)
    model = accelerator.unwrap_model(model)
    meta = {"key_parts": parts, "train_seconds": stats.seconds, "steps": stats.steps, "loss_curve": stats.loss_curve,
            "curve": curve_entry(stats.curve, stats.kept_step)}
    fingerprint = None  # the main process's record alone is written
    if accelerator.is_main_process:
        fingerprint = weights_fingerprint(save(path, model.cpu(), meta))
        log(f"[{data.name}] fine-tuned teacher cached in {path}")
        checkpoint.clear()  # the cached teacher holds everything now
    accelerator.wait_for_everyone()
    return model, {**{k: meta[k] for k in TEACHER_META}, "weights_sha256": fingerprint}


def format_scores(scores: dict) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in scores.items())
