"""Run ids and record files cannot collide, and a failed run leaves no partial record."""

import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from kdbench import results
from kdbench.cli import main


def test_a_colliding_suffix_draws_again(tmp_path, monkeypatch):
    suffixes = iter(["aaaaaaaa", "aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(results.secrets, "token_hex", lambda n: next(suffixes))
    monkeypatch.setattr(results.time, "strftime", lambda fmt, t=None: "20260101T000000Z")
    first = results.reserve_record_path(tmp_path, "kd", {"a": 1})
    second = results.reserve_record_path(tmp_path, "kd", {"a": 1})
    assert first[1].name.endswith("-aaaaaaaa.json") and second[1].name.endswith("-bbbbbbbb.json")


def _reserve_many(folder: str) -> list[str]:
    return [results.reserve_record_path(Path(folder), "kd", {"same": "config"})[0] for _ in range(50)]


def test_four_processes_reserving_at_once_get_distinct_records(tmp_path):
    with ProcessPoolExecutor(4) as pool:
        ids = [i for batch in pool.map(_reserve_many, [str(tmp_path)] * 4) for i in batch]
    assert len(ids) == len(set(ids)) == 200 == len(list(tmp_path.glob("*.json")))


def test_four_runs_started_together_write_four_complete_records(tmp_path, data_root, cache_dir):
    # warm the teacher cache first so that the four runs only race on their records
    args = ["suite=glue_enc_tiny", "method=kd", "train.max_steps=2", "data.max_eval_examples=16", f"data_dir={data_root}",
            f"results_dir={tmp_path}", f"cache_dir={cache_dir}"]
    assert main(["run", *args, f"results_dir={tmp_path / 'warm'}"]) == 0
    procs = [subprocess.Popen([sys.executable, "-m", "kdbench", "run", *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    assert all(p.wait(timeout=600) == 0 for p in procs), [p.stderr.read() for p in procs]
    records = [json.loads(p.read_text()) for p in (tmp_path / "glue_enc_tiny").glob("*.json")]
    assert len(records) == 4 and len({r["run_id"] for r in records}) == 4
    assert all(r["status"] == "complete" for r in records)


def test_a_run_that_fails_before_any_task_leaves_no_record(tmp_path, data_root, cache_dir, capsys):
    (tmp_path / "data" / "glue" / "SST-2").mkdir(parents=True)
    (tmp_path / "data" / "glue" / "SST-2" / "train.tsv").write_text("sentence\tlabel\nfine\t1\n")
    code = main(["run", "suite=glue_enc_tiny", "method=none", f"data_dir={tmp_path / 'data'}",
                 f"results_dir={tmp_path / 'results'}", f"cache_dir={cache_dir}"])
    assert code == 2 and "dev.tsv" in capsys.readouterr().err
    assert not list((tmp_path / "results").rglob("*.json"))
