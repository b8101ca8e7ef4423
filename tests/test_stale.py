"""Records left "running" by a killed process are marked "interrupted" by the next run (kdbench.stale)."""
import json
import signal
import socket
import subprocess
import sys
import time

from kdbench.cli import main
from kdbench.stale import mark_stale, unfinished
from tests.conftest import as_committed


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _written(folder) -> bool:
    try:
        return any(json.loads(p.read_text()).get("status") == "running" for p in folder.glob("*.json"))
    except ValueError:
        return False


def _write(folder, name, status, writer):
    record = {"schema_version": 1, "run_id": name, "status": status, "suite": "s", "method": "none", "seed": 0,
              "config": {}, "metrics": {}, "created_at": "2026-11-30T00:00:00Z", "writer": writer}
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_only_records_of_dead_processes_on_this_host_are_marked(tmp_path, capsys):
    here = socket.gethostname()
    _write(tmp_path, "dead", "running", {"pid": _dead_pid(), "host": here})
    _write(tmp_path, "alive", "running", {"pid": subprocess.os.getpid(), "host": here})
    _write(tmp_path, "elsewhere", "running", {"pid": _dead_pid(), "host": here + "-other"})
    _write(tmp_path, "old", "running", None)  # written before records named their writer: left as it is
    _write(tmp_path, "done", "complete", {"pid": _dead_pid(), "host": here})
    marked = mark_stale(tmp_path, "new-run", log=lambda m: None)
    assert [p.stem for p in marked] == ["dead"]
    dead = json.loads((tmp_path / "dead.json").read_text())
    assert dead["status"] == "interrupted" and "new-run" in dead["error"]
    statuses = {p.stem: json.loads(p.read_text())["status"] for p in tmp_path.glob("*.json")}
    assert statuses == {"dead": "interrupted", "alive": "running", "elsewhere": "running", "old": "running",
                        "done": "complete"}


def test_a_run_killed_before_its_first_checkpoint_is_marked_by_the_next_run(tmp_path, data_root, cache_dir, capsys):
    results = tmp_path / "r"
    args = ["suite=glue_enc_tiny", "method=none", "train.max_steps=4", "data.max_eval_examples=16",
            f"data_dir={data_root}", f"results_dir={results}", f"cache_dir={cache_dir}", "checkpoint_every=0"]
    proc = subprocess.Popen([sys.executable, "-m", "kdbench", "run", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not _written(results / "glue_enc_tiny"):  # the file is reserved empty, then written
        assert proc.poll() is None and time.monotonic() < deadline, "the run wrote no record"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed = next((results / "glue_enc_tiny").glob("*.json"))
    assert json.loads(killed.read_text())["status"] == "running"
    assert unfinished(results) == "1 unfinished record left out (1 running)"
    assert main(["run", *args]) == 0
    assert json.loads(killed.read_text())["status"] == "interrupted"
    capsys.readouterr()
    assert main(["leaderboard", f"results_dir={as_committed(results)}"]) == 0
    assert "1 unfinished record left out (1 interrupted)" in capsys.readouterr().out
