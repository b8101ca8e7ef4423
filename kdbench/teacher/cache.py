"""The teacher-output cache: the teacher's logits on the training set, kept on disk and reused by every
method and seed that trains on the same data (`teacher_cache=false` turns it off).

What is stored, per training example (looked up through the batch's `example_index`):
- classification: the full logits `(C,)`, float32;
- causal LMs with a small vocabulary (≤ DENSE_TOKEN_VOCAB, the char suite): the full logits of every real
  token, float32, so every method reads the exact distribution;
- causal LMs with a large vocabulary, only where the user opts in to the approximation
  (`teacher_cache_k=k`): for every real token, the teacher's top-k raw logits (float16) and their token ids
  (int32), plus logsumexp(z / T) over the whole vocabulary (float32) at the method's temperature T, so
  that the mass outside the top-k is known exactly: `kdbench.losses.topk_kl.sparse_forward_kl` treats it
  as one tail bucket (the exact KL of the (top-k, rest) coarsening, a coarser objective than the dense
  KL; records say `topk(k)` and the leaderboard keeps them in their own group). Without the opt-in a
  large-vocabulary LM teacher runs live: every method in a table optimises the same, exact objective.
- with feature alignment (fakd), for classifiers and small-vocabulary causal LMs: also the hidden states
  of the mapped teacher layers only (per real token, float16) and the attention maps of the mapped layers
  only (all heads, real queries x real keys, float16). A large-vocabulary causal LM with features runs the
  teacher live. float16 because features are wide (the char teacher's two mapped layers and one attention
  map take 1.5 GB for Tiny Shakespeare): its relative rounding of 2^-11 moves the fakd loss by about 1e-3
  of itself (tests/test_teacher_outputs.py), the record's key says `features: float16`.

Filled lazily. A run draws only `max_steps × batch_size` examples (9,600 of SST-2's 67,349 by default), so
the entry is created with room for every example and filled the first time an example is drawn: the rows of
a training batch that are not stored yet go through the teacher once (the stored ones are not run again),
they are written, and from then on every method and seed reads them. A run pays for each example it draws
once at most, and never for rows it does not draw.

Layout (a folder): `manifest.json` (key parts, array dtypes/shapes/byte sizes, the sha256 of the
immutable `offsets`), the arrays as `.npy` files opened memory-mapped (created sparse), and `row_hash`
`(N,)` uint64: a 64-bit BLAKE2b of each example's stored bytes, 0 while the example is unfilled. Every
read re-hashes the rows it returns: a row whose bytes do not match its hash (a torn write, a flipped bit,
a crash between data and hash) is reported and recomputed, never read. A missing or resized array or an
unreadable manifest is reported and the entry is created anew. Runs in several processes fill disjoint
rows of one entry (identical rows race harmlessly: each write is re-verified by its hash).

Key (kdbench.teacher.weights.teacher_key of `key_parts`): the fine-tuned teacher's weights key (teacher hash,
task, training data, fine-tuning budget), the tokenizer, the training data's sha256 and row limit,
train.max_length, and for LMs k, T and the padding side.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from kdbench.files import replace_folder
from kdbench.locks import file_lock
from kdbench.teacher.outputs import TeacherOut, TopK

FORMAT = 2
DENSE_TOKEN_VOCAB = 4096  # causal LMs up to this vocabulary keep full per-token logits (16 KB a token)


def key_parts(weights_parts: dict, tokenizer, data, cfg, kind: str, k: int, temperature: float,
              hidden_layers: tuple = (), attention_layers: tuple = ()) -> dict:
    parts = {"format": FORMAT, "teacher_weights": weights_parts, "tokenizer": tokenizer.name_or_path,
             "vocab": len(tokenizer), "train_data": data.train.sha256, "train_rows": len(data.train.examples),
             "max_train_examples": cfg.data.max_train_examples, "max_length": cfg.train.max_length, "kind": kind}
    if hidden_layers or attention_layers:
        parts.update(hidden_layers=list(hidden_layers), attention_layers=list(attention_layers), features="float16")
    if kind == "topk":
        parts.update(k=k, temperature=temperature, padding_side=cfg.data.padding_side)
    if kind == "tokens":
        parts.update(padding_side=cfg.data.padding_side)
    return parts


@dataclass(frozen=True)
class Layout:
    """What an entry holds: `kind` "logits" (classes per example), "topk" (k per real token) or "tokens"
    (the full vocabulary per real token, float32: exact, for small vocabularies)."""

    kind: str
    lengths: tuple[int, ...]  # real tokens per training example, in dataset order
    classes: int = 0  # "logits": C
    k: int = 0  # "topk"
    vocab: int = 0  # "tokens"
    temperature: float = 1.0  # "topk": T of the stored log-sum-exp
    hidden_layers: tuple[int, ...] = ()  # "logits"/"tokens": hidden-state indices to keep (0 = embeddings)
    attention_layers: tuple[int, ...] = ()  # "logits"/"tokens": attention-map indices to keep (0 = first layer)
    hidden_size: int = 0
    heads: int = 0

    def offsets(self, squared: bool = False) -> np.ndarray:
        """Where each example starts in the per-token arrays (or, squared, the per-(query, key) arrays)."""
        sizes = [n * n * self.heads for n in self.lengths] if squared else self.lengths
        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(sizes)
        return offsets

    def arrays(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        n, tokens = len(self.lengths), int(sum(self.lengths))
        if self.kind == "topk":
            assert not self.features, "top-k entries keep no features"
            return {"values": ("float16", (tokens, self.k)), "indices": ("int32", (tokens, self.k)),
                    "lse": ("float32", (tokens,)), "row_hash": ("uint64", (n,))}
        out = {"logits": ("float32", (n, self.classes) if self.kind == "logits" else (tokens, self.vocab))}
        for layer in self.hidden_layers:
            out[f"hidden_{layer}"] = ("float16", (tokens, self.hidden_size))
        squares = int(sum(length * length for length in self.lengths)) * self.heads
        for layer in self.attention_layers:
            out[f"attention_{layer}"] = ("float16", (squares,))
        return {**out, "row_hash": ("uint64", (n,))}

    @property
    def features(self) -> bool:
        return bool(self.hidden_layers or self.attention_layers)


@dataclass
class FillStats:
    rows_read: int = 0  # rows found in the cache when first needed
    rows_filled: int = 0  # rows computed by the teacher and written
    rows_damaged: int = 0  # rows whose bytes did not match their hash (recomputed)
    fill_seconds: float = 0.0
    damaged_examples: list = field(default_factory=list)


def _row_hash(*parts: np.ndarray) -> int:
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(np.ascontiguousarray(part).tobytes())
    return int.from_bytes(digest.digest(), "little") | 1  # never 0: 0 marks an unfilled row


class TeacherOutputs:
    """An entry, memory-mapped for reading and writing; `batch(batch, run_teacher)` gives the teacher
    outputs for a training batch (a TeacherOut as stored, not yet aligned with the targets), running the
    teacher only when an example is not stored yet. Padded positions hold 0 (losses mask them; padded keys
    of an attention map have probability 0 anyway)."""

    def __init__(self, folder: Path, manifest: dict, layout: Layout, log=print):
        self.folder, self.manifest, self.layout, self.log = folder, manifest, layout, log
        self.arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r+") for name in manifest["arrays"]}
        self.offsets = layout.offsets()
        self.square_offsets = layout.offsets(squared=True)
        self.stats = FillStats()
        self._seen: set[int] = set()  # examples counted in rows_read/rows_filled already

    @property
    def kind(self) -> str:
        return self.layout.kind

    def _rows(self, i: int) -> tuple[np.ndarray, ...]:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        if self.kind == "topk":
            return self.arrays["values"][lo:hi], self.arrays["indices"][lo:hi], self.arrays["lse"][lo:hi]
        a, b = int(self.square_offsets[i]), int(self.square_offsets[i + 1])
        logits = self.arrays["logits"][i] if self.kind == "logits" else self.arrays["logits"][lo:hi]
        return (logits, *(self.arrays[f"hidden_{l}"][lo:hi] for l in self.layout.hidden_layers),
                *(self.arrays[f"attention_{l}"][a:b] for l in self.layout.attention_layers))

    def _intact(self, i: int) -> bool | None:
        """True: filled and intact; None: not filled yet; False: filled but damaged."""
        stored = int(self.arrays["row_hash"][i])
        if stored == 0:
            return None
        return _row_hash(*self._rows(i)) == stored

    def batch(self, batch: dict, run_teacher: Callable[[dict], object]):
        """The teacher outputs of `batch`; `run_teacher(batch)` → the model's outputs (logits, and the
        hidden states / attentions the entry keeps) runs only on the batch's rows that are not stored yet."""
        index = batch["example_index"].cpu().tolist()
        missing = []
        for row, i in enumerate(index):
            state = self._intact(i)
            if state is False:
                self.stats.rows_damaged += 1
                if len(self.stats.damaged_examples) < 10:
                    self.stats.damaged_examples.append(i)
                self.log(f"teacher-output cache {self.folder}: example {i} does not match its hash; recomputing it")
            if state is not True:
                missing.append(row)
            elif i not in self._seen:
                self.stats.rows_read += 1
            self._seen.add(i)
        if missing:
            start = time.perf_counter()
            with torch.no_grad():  # the teacher sees the missing rows only: a nearly full entry costs nearly nothing
                rows = torch.tensor(missing, device=batch["input_ids"].device)
                sub = {key: value.index_select(0, rows) if torch.is_tensor(value) and value.dim() else value
                       for key, value in batch.items()}
                out = run_teacher(sub)
            self._write(sub, out, list(range(len(missing))), [index[row] for row in missing])
            self.stats.rows_filled += len(missing)
            self.stats.fill_seconds += time.perf_counter() - start
        return self._read(batch, index)

    def _write(self, batch: dict, out, rows: list[int], index: list[int]) -> None:
        mask = batch["attention_mask"].bool()
        logits = out.logits.float()
        for row in rows:
            i = index[row]
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            if self.kind == "logits":
                self.arrays["logits"][i] = logits[row].cpu().numpy()
            else:
                z = logits[row][mask[row]]  # (L, V): the real tokens in order, left- or right-padded
                if z.shape[0] != self.layout.lengths[i]:
                    raise RuntimeError(f"example {i} has {z.shape[0]} real tokens, the cache expects"
                                       f" {self.layout.lengths[i]}")
            if self.kind == "tokens":
                self.arrays["logits"][lo:hi] = z.cpu().numpy()
            if self.kind == "topk":
                top = z.topk(self.layout.k, dim=-1)
                self.arrays["values"][lo:hi] = top.values.half().cpu().numpy()
                self.arrays["indices"][lo:hi] = top.indices.int().cpu().numpy()
                self.arrays["lse"][lo:hi] = torch.logsumexp(z / self.layout.temperature, dim=-1).cpu().numpy()
            else:
                self._write_features(out, row, i, mask[row].nonzero().squeeze(-1))
            self.arrays["row_hash"][i] = _row_hash(*self._rows(i))  # after the data: a torn write never verifies

    def _write_features(self, out, row: int, i: int, where: torch.Tensor) -> None:
        """Example i's features from row `row` of the model's outputs, at its real positions `where`."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        for layer in self.layout.hidden_layers:
            h = out.hidden_states[layer][row, where]  # (L, H)
            self.arrays[f"hidden_{layer}"][lo:hi] = h.half().cpu().numpy()
        a, b = int(self.square_offsets[i]), int(self.square_offsets[i + 1])
        for layer in self.layout.attention_layers:
            maps = out.attentions[layer][row][:, where][:, :, where]  # (h, L, L): real queries x keys
            self.arrays[f"attention_{layer}"][a:b] = maps.reshape(-1).half().cpu().numpy()

    def _read(self, batch: dict, index: list[int]):
        device = batch["input_ids"].device
        mask = batch["attention_mask"].bool().cpu()
        B, T = mask.shape
        if self.kind == "topk":
            return self._read_topk(mask, index, device)
        if self.kind == "logits":
            logits = torch.from_numpy(np.array(self.arrays["logits"][index])).to(device)
        else:
            logits = torch.zeros(B, T, self.layout.vocab, dtype=torch.float32)
            for row, i in enumerate(index):
                lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
                logits[row, mask[row].nonzero().squeeze(-1)] = torch.from_numpy(np.array(self.arrays["logits"][lo:hi]))
            logits = logits.to(device)
        return self._read_features(batch, index, logits) if self.layout.features else TeacherOut(logits)

    def _read_topk(self, mask: torch.Tensor, index: list[int], device) -> TeacherOut:
        B, T = mask.shape
        k = self.layout.k
        values = torch.zeros(B, T, k, dtype=torch.float16)
        indices = torch.zeros(B, T, k, dtype=torch.long)
        lse = torch.zeros(B, T, dtype=torch.float32)
        for row, i in enumerate(index):
            where = mask[row].nonzero().squeeze(-1)  # the real tokens, left- or right-padded
            v, ids, s = self._rows(i)
            values[row, where] = torch.from_numpy(np.array(v))  # copies off the map
            indices[row, where] = torch.from_numpy(ids.astype(np.int64))
            lse[row, where] = torch.from_numpy(np.array(s))
        return TeacherOut(topk=TopK(values.to(device), indices.to(device), lse.to(device)))

    def _read_features(self, batch: dict, index: list[int], logits: torch.Tensor) -> TeacherOut:
        mask = batch["attention_mask"].bool().cpu()
        B, T = mask.shape
        last = max((*self.layout.hidden_layers, *self.layout.attention_layers, 0))
        hidden, attentions = [None] * (last + 1), [None] * (last + 1)
        for layer in self.layout.hidden_layers:
            hidden[layer] = torch.zeros(B, T, self.layout.hidden_size, dtype=torch.float16)
        for layer in self.layout.attention_layers:
            attentions[layer] = torch.zeros(B, self.layout.heads, T, T, dtype=torch.float16)
        for row, i in enumerate(index):
            where = mask[row].nonzero().squeeze(-1)
            n = where.numel()
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            for layer in self.layout.hidden_layers:
                hidden[layer][row, where] = torch.from_numpy(np.array(self.arrays[f"hidden_{layer}"][lo:hi]))
            a, b = int(self.square_offsets[i]), int(self.square_offsets[i + 1])
            grid = torch.meshgrid(where, where, indexing="ij")
            for layer in self.layout.attention_layers:
                maps = torch.from_numpy(np.array(self.arrays[f"attention_{layer}"][a:b])).reshape(-1, n, n)
                attentions[layer][row][:, grid[0], grid[1]] = maps
        device = logits.device
        return TeacherOut(logits, None, [h.to(device) if h is not None else None for h in hidden],
                          [a.to(device) if a is not None else None for a in attentions])

    def close(self) -> None:
        """Flush the filled rows to disk (the hashes catch anything a crash leaves half-written)."""
        for array in self.arrays.values():
            array.flush()

    def meta(self) -> dict:
        filled = int(np.count_nonzero(self.arrays["row_hash"]))
        return {"rows_read": self.stats.rows_read, "rows_filled": self.stats.rows_filled,
                "rows_damaged": self.stats.rows_damaged, "fill_s": round(self.stats.fill_seconds, 2),
                "rows_in_entry": filled, "rows_total": len(self.layout.lengths), "folder": str(self.folder)}


def entry_folder(cache_dir: Path, task: str, key: str) -> Path:
    return cache_dir / "teacher_outputs" / f"{task}-{key}"


def check(folder: Path, layout: Layout) -> tuple[dict | None, str | None]:
    """(manifest, None) for a usable entry, (None, None) for none, (None, problem) for a damaged one.

    Checks what does not change after creation: the manifest, every array's presence, dtype, shape and byte
    size, and the offsets. Rows are checked one by one when read (their hashes)."""
    manifest_file = folder / "manifest.json"
    if not manifest_file.is_file():
        return None, ("no manifest.json" if folder.exists() else None)
    try:
        manifest = json.loads(manifest_file.read_text())
        arrays = manifest["arrays"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, "manifest.json is unreadable"
    expected = layout.arrays()
    if sorted(arrays) != sorted(expected):
        return None, f"it holds {sorted(arrays)}, expected {sorted(expected)}"
    if manifest.get("offsets_sha256") != _offsets_sha256(layout):
        return None, "its example lengths do not match the training data"
    for name, spec in arrays.items():
        path = folder / f"{name}.npy"
        if not path.is_file():
            return None, f"{name}.npy is missing"
        if path.stat().st_size != spec["bytes"]:
            return None, f"{name}.npy has {path.stat().st_size} bytes, the manifest says {spec['bytes']}"
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            return None, f"{name}.npy is unreadable ({e})"
        dtype, shape = expected[name]
        if str(array.dtype) != dtype or list(array.shape) != list(shape):
            return None, f"{name}.npy is {array.dtype} {list(array.shape)}, expected {dtype} {list(shape)}"
    return manifest, None


def _offsets_sha256(layout: Layout) -> str:
    return hashlib.sha256(layout.offsets().tobytes() + layout.offsets(squared=True).tobytes()).hexdigest()


def open_entry(folder: Path, parts: dict, layout: Layout, log=print) -> tuple[TeacherOutputs, dict]:
    """The entry at `folder`, created empty (sparse files) when missing or damaged; with its meta."""
    manifest, problem = check(folder, layout)
    if manifest is None:
        with file_lock(folder.with_name(f".{folder.name}.lock"), log):  # one process creates, the others wait
            manifest, problem = check(folder, layout)
            if manifest is None:
                if problem:
                    log(f"teacher-output cache {folder} is damaged ({problem}): creating it anew")
                full = sum(np.dtype(d).itemsize * int(np.prod(shape)) for d, shape in layout.arrays().values())
                log(f"creating teacher-output cache {folder}: up to {full / 1024 ** 3:.2f} GB on disk once all"
                    f" {len(layout.lengths)} training examples are drawn (sparse files: it grows as they are)")
                _create(folder, parts, layout)
                manifest, problem = check(folder, layout)
                assert manifest is not None, problem
    store = TeacherOutputs(folder, manifest, layout, log)
    filled = int(np.count_nonzero(store.arrays["row_hash"]))
    total = len(layout.lengths)
    state = (f"all {total} examples filled, nothing to compute" if filled == total else
             f"{filled} of {total} examples filled; the other {total - filled} are computed when first drawn")
    log(f"teacher outputs cached in {folder}: {state}")
    return store, {"rows_in_entry_at_start": filled}


def _create(folder: Path, parts: dict, layout: Layout) -> None:
    tmp = folder.with_name(f".{folder.name}.tmp-{time.time_ns()}")
    tmp.mkdir(parents=True)
    specs = {}
    for name, (dtype, shape) in layout.arrays().items():
        path = tmp / f"{name}.npy"
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)  # zeros, sparse on disk
        array.flush()
        del array
        specs[name] = {"dtype": dtype, "shape": list(shape), "bytes": path.stat().st_size}
    manifest = {"format": FORMAT, "key_parts": parts, "kind": layout.kind, "arrays": specs,
                "offsets_sha256": _offsets_sha256(layout), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                       time.gmtime())}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    replace_folder(tmp, folder)

