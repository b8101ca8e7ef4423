"""The teacher-output cache: the teacher's logits on the training set, computed once, reused by every
method and seed that trains on the same data (`teacher_cache=false` turns it off).

What is stored, per training example (looked up through the batch's `example_index`):
- classification: the full logits `(C,)`, float32;
- causal LMs: for every real token, the teacher's top-k raw logits (float16) and their token ids (int32),
  plus logsumexp(z / T) over the whole vocabulary (float32) at the method's temperature T, so that the
  mass outside the top-k is known exactly: `kdbench.losses.chunked.sparse_forward_kl` treats it as one
  tail bucket (the exact KL of the (top-k, rest) coarsening; equal to the dense KL when k = V).
Hidden states and attentions are not cached: methods that need them (fakd) run the teacher live.

Key (kdbench.teacher.teacher_key of `key_parts`): the fine-tuned teacher's weights key (teacher hash,
task, training data, fine-tuning budget), the tokenizer, the training data's sha256 and row limit,
train.max_length, and for LMs k and T. An entry is a folder, written under a temporary name, fsynced and
renamed, with manifest.json listing every array's dtype, shape, byte size and sha256. Arrays are opened
memory-mapped. An entry whose files do not match its manifest is reported and rebuilt, never read.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kdbench.files import file_sha256, replace_folder
from kdbench.locks import file_lock

FORMAT = 1


def key_parts(weights_parts: dict, tokenizer, data, cfg, kind: str, k: int, temperature: float) -> dict:
    parts = {"format": FORMAT, "teacher_weights": weights_parts, "tokenizer": tokenizer.name_or_path,
             "vocab": len(tokenizer), "train_data": data.train.sha256, "train_rows": len(data.train.examples),
             "max_train_examples": cfg.data.max_train_examples, "max_length": cfg.train.max_length, "kind": kind}
    if kind == "topk":
        parts.update(k=k, temperature=temperature, padding_side=cfg.data.padding_side)
    return parts


@dataclass
class SparseTeacher:
    """A batch's teacher as top-k logits: values/indices `(B, T, k)`, lse `(B, T)` at temperature T."""

    topk_values: torch.Tensor
    topk_indices: torch.Tensor
    lse: torch.Tensor

    def shifted(self) -> "SparseTeacher":
        """Aligned to targets like a causal LM's logits: position t predicts token t+1."""
        return SparseTeacher(self.topk_values[:, :-1], self.topk_indices[:, :-1], self.lse[:, :-1])


@dataclass
class DenseTeacher:
    logits: torch.Tensor  # (B, C)


class TeacherOutputs:
    """An intact cache entry, memory-mapped; `batch(batch)` gives the teacher outputs for a training batch."""

    def __init__(self, folder: Path, manifest: dict):
        self.folder, self.manifest = folder, manifest
        self.arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in manifest["arrays"]}

    @property
    def kind(self) -> str:
        return "logits" if "logits" in self.arrays else "topk"

    def batch(self, batch: dict):
        index = batch["example_index"].cpu().tolist()
        device = batch["input_ids"].device
        if self.kind == "logits":
            return DenseTeacher(torch.from_numpy(np.ascontiguousarray(self.arrays["logits"][index])).to(device))
        mask = batch["attention_mask"].bool().cpu()
        B, T = mask.shape
        k = self.arrays["values"].shape[1]
        values = torch.zeros(B, T, k, dtype=torch.float16)
        indices = torch.zeros(B, T, k, dtype=torch.long)
        lse = torch.zeros(B, T, dtype=torch.float32)
        offsets = self.arrays["offsets"]
        for row, i in enumerate(index):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            where = mask[row].nonzero().squeeze(-1)  # the real tokens, left- or right-padded
            values[row, where] = torch.from_numpy(np.array(self.arrays["values"][lo:hi]))  # copies off the map
            indices[row, where] = torch.from_numpy(self.arrays["indices"][lo:hi].astype(np.int64))
            lse[row, where] = torch.from_numpy(np.array(self.arrays["lse"][lo:hi]))
        return SparseTeacher(values.to(device), indices.to(device), lse.to(device))


def entry_folder(cache_dir: Path, task: str, key: str) -> Path:
    return cache_dir / "teacher_outputs" / f"{task}-{key}"


def check(folder: Path) -> tuple[dict | None, str | None]:
    """(manifest, None) for an intact entry, (None, None) for none, (None, problem) for a damaged one."""
    manifest_file = folder / "manifest.json"
    if not manifest_file.is_file():
        return None, ("no manifest.json" if folder.exists() else None)
    try:
        manifest = json.loads(manifest_file.read_text())
        arrays = manifest["arrays"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, "manifest.json is unreadable"
    for name, spec in arrays.items():
        path = folder / f"{name}.npy"
        if not path.is_file():
            return None, f"{name}.npy is missing"
        if path.stat().st_size != spec["bytes"]:
            return None, f"{name}.npy has {path.stat().st_size} bytes, the manifest says {spec['bytes']}"
        if file_sha256(path) != spec["sha256"]:
            return None, f"{name}.npy does not match its sha256"
    return manifest, None


def load_or_build(folder: Path, parts: dict, build, log=print) -> tuple[TeacherOutputs, dict]:
    """The entry at `folder`, built by `build()` → dict of arrays when missing or damaged; with its meta."""
    manifest, problem = check(folder)
    if manifest is not None:
        log(f"teacher outputs from cache {folder}")
        return TeacherOutputs(folder, manifest), {"hit": True, "build_s": 0.0, "folder": str(folder)}
    with file_lock(folder.with_name(f".{folder.name}.lock"), log):  # one process builds, the others wait
        manifest, problem = check(folder)
        if manifest is not None:
            log(f"teacher outputs from cache {folder}")
            return TeacherOutputs(folder, manifest), {"hit": True, "build_s": 0.0, "folder": str(folder)}
        if problem:
            log(f"teacher-output cache {folder} is damaged ({problem}): rebuilding it")
        start = time.perf_counter()
        arrays = build()
        seconds = time.perf_counter() - start
        _write(folder, parts, arrays, seconds)
        log(f"teacher outputs computed in {seconds:.1f} s, cached in {folder}")
        manifest, problem = check(folder)
        assert manifest is not None, problem
        return TeacherOutputs(folder, manifest), {"hit": False, "build_s": round(seconds, 2), "folder": str(folder)}


def _write(folder: Path, parts: dict, arrays: dict[str, np.ndarray], seconds: float) -> None:
    tmp = folder.with_name(f".{folder.name}.tmp-{time.time_ns()}")
    tmp.mkdir(parents=True)
    specs = {}
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", array)
        path = tmp / f"{name}.npy"
        specs[name] = {"dtype": str(array.dtype), "shape": list(array.shape), "bytes": path.stat().st_size,
                       "sha256": file_sha256(path)}
    manifest = {"format": FORMAT, "key_parts": parts, "arrays": specs, "build_seconds": round(seconds, 2)}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    replace_folder(tmp, folder)


@torch.no_grad()
def compute(teacher, features: list[dict], collate, kind: str, k: int, temperature: float, accelerator,
            batch_size: int = 32) -> dict[str, np.ndarray]:
    """The arrays of an entry: the teacher run over `features` in order, `batch_size` at a time."""
    from tqdm.auto import tqdm

    from kdbench.runner import model_inputs

    teacher = teacher.to(accelerator.device).eval()
    logits_rows, values, indices, lse, lengths = [], [], [], [], []
    import sys

    batches = range(0, len(features), batch_size)
    for start in tqdm(batches, desc="teacher outputs", unit="batch", leave=False,
                      mininterval=0.5 if sys.stderr.isatty() else 30):
        batch = {key: v.to(accelerator.device) for key, v in collate(features[start:start + batch_size]).items()}
        with accelerator.autocast():
            logits = teacher(**model_inputs(batch)).logits.float()
        if kind == "logits":
            logits_rows.append(logits.cpu())
            continue
        for row in range(logits.shape[0]):
            z = logits[row][batch["attention_mask"][row].bool()]  # (L, V): the real tokens in order
            top = z.topk(k, dim=-1)
            values.append(top.values.half().cpu())
            indices.append(top.indices.int().cpu())
            lse.append(torch.logsumexp(z / temperature, dim=-1).cpu())
            lengths.append(z.shape[0])
    if kind == "logits":
        return {"logits": torch.cat(logits_rows).numpy()}
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    return {"values": torch.cat(values).numpy(), "indices": torch.cat(indices).numpy(),
            "lse": torch.cat(lse).numpy(), "offsets": offsets}
