"""Cache locks: of several processes that miss the same entry at once, exactly one builds it."""

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from kdbench.locks import file_lock


def _build_once(folder: str) -> str:
    entry, log = Path(folder) / "entry", Path(folder) / "builds.log"
    if entry.exists():
        return "hit"
    with file_lock(Path(folder) / "entry.lock"):
        if entry.exists():  # built by another process while this one waited
            return "waited"
        with log.open("a") as f:
            f.write("built\n")
        time.sleep(0.5)  # a slow build: the others are at the lock by now
        entry.write_text("done")
        return "built"


def test_one_process_builds_the_others_wait(tmp_path):
    with ProcessPoolExecutor(4) as pool:
        outcomes = list(pool.map(_build_once, [str(tmp_path)] * 4))
    assert outcomes.count("built") == 1
    assert (tmp_path / "builds.log").read_text() == "built\n"


def test_a_lock_is_released_when_its_holder_raises(tmp_path):
    try:
        with file_lock(tmp_path / "x.lock"):
            raise RuntimeError("build failed")
    except RuntimeError:
        pass
    messages = []
    with file_lock(tmp_path / "x.lock", messages.append):
        pass
    assert messages == []  # acquired at once: nobody holds it
