"""Inter-process file locks for cache entries: one process builds an entry, the others wait and then read it.

    with file_lock(entry.with_name(f".{entry.name}.lock"), log):  # hidden: globs over entries skip it
        if not complete(entry):
            build(entry)

POSIX `flock` on a side file: released by the kernel when the holder dies (a killed build never leaves a
stale lock). Entries themselves are still written under a temporary name and renamed, so a reader that
does not lock never sees half an entry either.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, log=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log:
                log(f"waiting for another kdbench process that is building {path.with_suffix('')}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
