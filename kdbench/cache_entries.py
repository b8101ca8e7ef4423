"""The cache's entries, their size and last use, and a bound on their total size (`cache_max_gb`).

An entry is one child of a kind folder under the cache dir: `teachers/<task>-<key>/` (fine-tuned weights),
`teacher_scores/<task>-<key>.json`, `teacher_outputs/<task>-<key>/`, `checkpoints/<...>/`,
`converted/<model>-<key>/` (GGUF converted once), `gguf/<file>` (a GGUF assembled from chunk packages)
and `builtin/<...>/`. Eviction removes whole entries,
least recently used first, and never one in use:

- a run that uses an entry holds a shared flock on its side file `.<entry>.use` until the run ends
  (`hold`), and touches it: the side file's mtime is the entry's last use (the entry's own mtime where
  it was never held);
- a builder holds the exclusive lock `.<entry>.lock` (`kdbench.locks`), and so does a run writing a
  checkpoint;
- `prune` removes an entry only while it holds both locks exclusively, taken without waiting: an entry
  whose lock it cannot take is in use and is skipped.

Sizes are bytes on disk (allocated blocks): teacher-output entries are sparse files that fill as
examples are drawn, so their apparent size overstates them many times.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

KINDS = ("teachers", "teacher_scores", "teacher_outputs", "checkpoints", "converted", "gguf", "builtin")
GB = 1024 ** 3


@dataclass
class Entry:
    kind: str
    path: Path
    bytes: int
    last_used: float  # seconds since the epoch

    @property
    def name(self) -> str:
        return self.path.name


def _side(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{suffix}")


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk for a file or a folder's files (sparse files count what they hold); a link
    holds nothing of its own."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _last_used(path: Path) -> float:
    use = _side(path, "use")
    return use.stat().st_mtime if use.exists() else path.lstat().st_mtime


def entries(cache_dir: Path) -> list[Entry]:
    """Every entry of the cache, least recently used first; hidden files (locks, temporaries) are not entries."""
    out = []
    for kind in KINDS:
        folder = Path(cache_dir) / kind
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.name.startswith("."):
                continue
            out.append(Entry(kind, path, disk_bytes(path), _last_used(path)))
    return sorted(out, key=lambda e: e.last_used)


_HELD: dict[Path, object] = {}  # entry -> its open side file; the kernel drops the locks when the process ends


def hold(path: Path) -> None:
    """Mark the entry `path` in use by this process for as long as it lives (a shared lock: any number of
    processes may hold it; a sweep keeps its teachers in memory across cells) and record the use. Waits
    only while a prune is removing the entry."""
    path = Path(path)
    if path in _HELD:
        return
    use = _side(path, "use")
    use.parent.mkdir(parents=True, exist_ok=True)
    handle = open(use, "a")
    fcntl.flock(handle, fcntl.LOCK_SH)
    os.utime(use)
    _HELD[path] = handle


@contextlib.contextmanager
def _exclusive(path: Path, create: bool = True):
    """Yield True when both of the entry's locks were taken without waiting (it is not in use), else False.
    `create=False` only looks: a missing side file means nobody holds that lock, and none is created (so
    that looking never changes an entry's last use)."""
    with contextlib.ExitStack() as stack:
        for suffix in ("lock", "use"):
            side = _side(path, suffix)
            if not create and not side.exists():
                continue
            handle = stack.enter_context(open(side, "a"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True


def _remove(entry: Entry) -> None:
    if entry.path.is_dir() and not entry.path.is_symlink():
        shutil.rmtree(entry.path)
    else:
        entry.path.unlink()


def prune(cache_dir: Path, max_bytes: int, log=print) -> tuple[list[Entry], list[Entry]]:
    """Evict least recently used entries until the cache holds at most `max_bytes`; returns (removed, in use
    and skipped). Where the entries in use alone exceed the bound, it says so and keeps them."""
    listed = entries(cache_dir)
    total = sum(e.bytes for e in listed)
    removed, busy = [], []
    for entry in listed:
        if total <= max_bytes:
            break
        with _exclusive(entry.path) as free:
            if not free:
                busy.append(entry)
                continue
            _remove(entry)
        for suffix in ("lock", "use"):
            _side(entry.path, suffix).unlink(missing_ok=True)
        removed.append(entry)
        total -= entry.bytes
        log(f"cache: evicted {entry.kind}/{entry.name} ({entry.bytes / GB:.2f} GB, last used"
            f" {time.strftime('%Y-%m-%d %H:%M', time.gmtime(entry.last_used))} UTC)")
    if total > max_bytes:
        log(f"cache: {total / GB:.2f} GB remain above the bound of {max_bytes / GB:.2f} GB: the rest is in use")
    return removed, busy


def table(cache_dir: Path) -> str:
    """`kdbench cache ls`: one line per entry, least recently used first, and the total."""
    listed = entries(cache_dir)
    lines = [f"{'kind':<16}{'GB':>8}  {'last used (UTC)':<17}  in use  entry"]
    for e in listed:
        with _exclusive(e.path, create=False) as free:
            busy = not free
        lines.append(f"{e.kind:<16}{e.bytes / GB:>8.3f}  {time.strftime('%Y-%m-%d %H:%M', time.gmtime(e.last_used)):<17}"
                     f"  {'yes' if busy else 'no':<6}  {e.name}")
    lines.append(f"{len(listed)} entries, {sum(e.bytes for e in listed) / GB:.2f} GB in {cache_dir}")
    return "\n".join(lines)
