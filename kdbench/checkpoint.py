"""Training checkpoints for exact resume: weights, projections, optimizer, scheduler, RNG, data position.

A run saves a checkpoint every `checkpoint_every` steps, after its last step, and when it receives SIGTERM
or SIGINT. Re-running the same command resumes from it (`resume=false` starts over). The folder is keyed
by everything that shapes the training: the resolved config (without operational keys such as
results_dir), the task and its training data. While a process trains from a folder it holds the folder's
lock, so two processes never write the same checkpoint; the kernel drops the lock when a process dies.

Files, each written to a temporary name, fsynced, then renamed (a reader sees the old file or the new one):

    state.pt    torch.save of tensors, numbers, strings, lists and dicts only; loaded with weights_only=True,
                so loading never unpickles arbitrary objects
    state.json  the step, the sha256 of state.pt and the record of the run that wrote it (for humans,
                for tests that poll progress, and to detect a truncated or altered state.pt)

Resume replays the data order: the loader is rebuilt from the same seed and the batches already used are
drawn again and dropped (collation only, no model work), then every RNG is restored. On CPU the resumed
run is bit-identical to an uninterrupted one (tests/test_resume.py).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kdbench.errors import KdbenchError
from kdbench.files import file_sha256, fsync_dir

FORMAT = 1


def rng_state() -> dict:
    """Every RNG a training step can draw from, as weights_only-loadable data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Checkpointer:
    """Where one task's training checkpoints live, how often to write them, and whether to resume."""

    folder: Path
    every: int  # steps between checkpoints; 0: only after the last step and on a stop signal
    resume: bool = True
    record: str = ""  # the record of the run that writes here (named in state.json)

    @property
    def state_file(self) -> Path:
        return self.folder / "state.pt"

    @property
    def meta_file(self) -> Path:
        return self.folder / "state.json"

    def due(self, step: int, last: int) -> bool:
        return step == last or (self.every > 0 and step % self.every == 0)

    def save(self, state: dict) -> None:
        """Write state.pt then state.json, each atomically; a write failure is one readable error."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.state_file, lambda f: torch.save({"format": FORMAT, **state}, f))
            meta = {"format": FORMAT, "step": state["step"], "sha256": file_sha256(self.state_file),
                    "record": self.record}
            _write_atomic(self.meta_file, lambda f: f.write(json.dumps(meta, indent=2).encode()))
            fsync_dir(self.folder)
        except OSError as e:
            raise KdbenchError(f"cannot write the checkpoint in {self.folder}: {e.strerror or e}; free disk space,"
                               " or pass checkpoint_every=0 to write checkpoints only at the end") from None

    def previous(self) -> dict | None:
        """state.json of an earlier run, if one left a checkpoint here (None when resume=false or none)."""
        if not self.resume or not self.meta_file.is_file():
            return None
        try:
            return json.loads(self.meta_file.read_text())
        except (OSError, ValueError) as e:
            raise self._corrupt(f"state.json is unreadable ({e})") from None

    def load(self) -> dict | None:
        """The saved training state, or None when there is none to resume from.

        A state whose bytes do not match the hash in state.json, or that does not load, is an error: the
        message names the folder and the fix. It is never half-read.
        """
        meta = self.previous()
        if meta is None:
            return None
        if not self.state_file.is_file() or file_sha256(self.state_file) != meta.get("sha256"):
            raise self._corrupt("state.pt is missing or does not match the sha256 in state.json")
        try:
            state = torch.load(self.state_file, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
            raise self._corrupt(f"state.pt does not load ({type(e).__name__})") from None
        if state.get("format") != FORMAT:
            raise self._corrupt(f"state.pt has format {state.get('format')!r}, this kdbench writes {FORMAT}")
        return state

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _corrupt(self, what: str) -> KdbenchError:
        return KdbenchError(f"checkpoint {self.folder} is corrupted: {what}; delete that folder or pass"
                            " resume=false to start the training over")
