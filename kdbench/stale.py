"""Records left "running" by a process that is gone (SIGKILL, power loss, the end of a session).

A run writes its record with status "running" before its first task and names its writer (pid and host).
A process killed with SIGKILL cannot finish that record; without this module it would say "running"
forever. Every new run in the same results folder marks such records "interrupted" when their writer ran
on this host and that pid is gone. Records from another host, or whose pid is alive (perhaps reused by
another process), are left as they are: marking a live run interrupted would be worse than waiting.
"""
from __future__ import annotations

import json
import os
import socket
from collections import Counter
from pathlib import Path

from kdbench.results import load_records, write_record


def writer() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def mark_stale(folder: Path, run_id: str, log=print) -> list[Path]:
    """Mark the "running" records in `folder` whose writer is a dead process on this host; returns them."""
    marked = []
    here = socket.gethostname()
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("status") != "running" or record.get("run_id") == run_id:
            continue
        who = record.get("writer")
        if not isinstance(who, dict) or who.get("host") != here or not isinstance(who.get("pid"), int):
            continue
        if process_alive(who["pid"]):
            continue
        record.update(status="interrupted", error=f"its process (pid {who['pid']} on {here}) was gone when run"
                                                  f" {run_id} started; the run never finished")
        write_record(path, record)
        log(f"{path.name}: marked interrupted (its process is gone)")
        marked.append(path)
    return marked


def unfinished(results_dir: Path, suite: str | None = None) -> str | None:
    """One line counting the records a leaderboard or check leaves out because their run did not finish."""
    records, _ = load_records(results_dir, suite)
    counts = Counter(r.get("status") for r in records if r.get("status", "complete") != "complete")
    if not counts:
        return None
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{sum(counts.values())} unfinished record{'s' if sum(counts.values()) != 1 else ''} left out ({parts})"
