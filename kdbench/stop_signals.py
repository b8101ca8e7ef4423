"""SIGTERM and SIGINT as a clean stop: the training loop finishes its step, saves a checkpoint, then stops.

Outside the training loop a signal stops the run at once (the record says "interrupted"). Inside it the
signal is only noted (`deferred()`), because stopping in the middle of an optimizer step would checkpoint
half-updated weights; the loop looks at `pending()` after each step.

Installed by the CLI for `run` and `sweep` (main thread only). A background job's SIGINT is ignored by the
shell that starts it; installing a handler makes `kill -INT` work there too.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_state = {"defer": False, "pending": None}


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; exit code 128 + the signal number, as a shell reports it."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


def _handler(signum, frame):
    if _state["defer"]:
        _state["pending"] = signum
        return
    raise Interrupted(f"stopped by {signal.Signals(signum).name}", signum)


@contextmanager
def handle_stop_signals():
    """Route SIGTERM/SIGINT through `_handler` for the duration; the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _state["pending"] = None


@contextmanager
def deferred():
    """Within this block a stop signal is recorded, not raised (see `pending`)."""
    before = _state["defer"]
    _state["defer"] = True
    try:
        yield
    finally:
        _state["defer"] = before


def pending() -> int | None:
    """The signal received during `deferred()`, if any."""
    return _state["pending"]


def interrupted(where: str, signum: int | None = None) -> Interrupted:
    """The exception that ends a run stopped by a signal (`signum`: the one a peer process received, under
    DDP; default: this process's own)."""
    signum = signum or _state["pending"] or signal.SIGINT
    _state["pending"] = None
    return Interrupted(f"stopped by {signal.Signals(signum).name} {where}", signum)
