"""The teacher's responses to the training prompts, for sequence-level KD: generated when first drawn, cached.

    <cache_dir>/teacher_responses/<task>-<key>/responses.json

Keyed like the teacher-output cache (kdbench.teacher.cache): the teacher's weights key parts (its identity,
the task's training data, its fine-tuning budget), the tokenizer, the training prompts, `train.max_length`,
and the decoding (greedy, or sampling at a temperature) with its response cap. The file maps a training
example's index to the prompt's digest and the response's token ids; a row whose prompt no longer matches is
generated again. Rows filled by this run are merged into the file under a lock when the run closes it, so
two runs filling one entry lose nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kdbench.cache_entries import hold
from kdbench.locks import file_lock
from kdbench.models.load import cache_root, model_identity
from kdbench.results import atomic_write_text
from kdbench.teacher.weights import teacher_key, weights_key_parts

FORMAT = 1


def _digest(prompt: list[int]) -> str:
    return hashlib.sha256(json.dumps(prompt).encode()).hexdigest()[:16]


def key_parts(weights_parts: dict, tokenizer, data, cfg, decoding: dict) -> dict:
    return {"format": FORMAT, "teacher_weights": weights_parts, "tokenizer": tokenizer.name_or_path,
            "vocab": len(tokenizer), "train_data": data.train.sha256, "train_rows": len(data.train.examples),
            "max_train_examples": cfg.data.max_train_examples, "max_length": cfg.train.max_length,
            "decoding": decoding}


class TeacherResponses:
    """One cache entry: `get` a stored response, `put` a new one, `close` to write the new ones."""

    def __init__(self, folder: Path, parts: dict):
        self.folder, self.parts = Path(folder), parts
        hold(self.folder)
        self.rows = self._read().get("responses", {})
        self.new: dict[str, dict] = {}
        self.read = 0

    @property
    def file(self) -> Path:
        return self.folder / "responses.json"

    def _read(self) -> dict:
        try:
            stored = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return {}  # none yet, or damaged: generated again and rewritten
        return stored if stored.get("parts") == self.parts else {}

    def get(self, index: int, prompt: list[int]) -> list[int] | None:
        row = self.rows.get(str(index))
        if row is None or row["prompt"] != _digest(prompt):
            return None
        self.read += 1
        return row["response"]

    def put(self, index: int, prompt: list[int], response: list[int]) -> None:
        row = {"prompt": _digest(prompt), "response": response}
        self.rows[str(index)] = self.new[str(index)] = row

    def close(self) -> dict:
        """Merge this run's rows into the entry's file; what the record keeps of the cache's use."""
        if self.new:
            self.folder.mkdir(parents=True, exist_ok=True)
            with file_lock(self.folder.with_name(f".{self.folder.name}.lock")):
                merged = {**self._read().get("responses", {}), **self.new}
                atomic_write_text(self.file, json.dumps({"parts": self.parts, "responses": merged}))
        return {"folder": str(self.folder), "rows_read": self.read, "rows_filled": len(self.new)}


def open_responses(cfg, data, tokenizer, policy) -> TeacherResponses:
    """The entry of this run's teacher, prompts and decoding (the policy's `greedy`, `temperature` and
    `max_new_tokens`)."""
    decoding = {"greedy": policy.greedy, "max_new_tokens": policy.max_new_tokens,
                "temperature": None if policy.greedy else policy.temperature,
                "padding_side": cfg.data.padding_side}
    parts = key_parts(weights_key_parts(cfg, model_identity(cfg.teacher, cfg.cache_dir or None), data), tokenizer,
                      data, cfg, decoding)
    return TeacherResponses(cache_root(cfg) / "teacher_responses" / f"{data.name}-{teacher_key(parts)}", parts)
