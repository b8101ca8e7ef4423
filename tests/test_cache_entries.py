"""The bounded cache (kdbench.cache_entries): LRU eviction of whole entries, never one in use."""
import json
import os
import subprocess
import sys
import time

from kdbench.cache_entries import GB, disk_bytes, entries, hold, prune
from kdbench.cli import main

MB = 1024 ** 2


def _entry(cache, kind, name, megabytes, age_hours):
    path = cache / kind / name
    path.mkdir(parents=True)
    (path / "weights.bin").write_bytes(os.urandom(megabytes * MB))
    stamp = time.time() - age_hours * 3600
    os.utime(path, (stamp, stamp))
    return path


def test_sparse_files_count_the_bytes_they_hold(tmp_path):
    sparse = tmp_path / "logits.npy"
    with open(sparse, "wb") as f:
        f.truncate(512 * MB)  # 512 MB apparent, nothing written
        f.write(b"x" * 4096)
    assert sparse.stat().st_size >= 512 * MB and disk_bytes(sparse) < MB


def test_prune_evicts_least_recently_used_first_and_never_an_entry_in_use(tmp_path):
    cache = tmp_path / "cache"
    oldest = _entry(cache, "teachers", "sst2-old", 3, age_hours=30)
    busy = _entry(cache, "teacher_outputs", "sst2-busy", 3, age_hours=20)
    middle = _entry(cache, "checkpoints", "glue-kd-sst2", 3, age_hours=10)
    newest = _entry(cache, "teachers", "sst2-new", 3, age_hours=1)
    # another process uses `busy` (a shared lock on its side file) while we prune
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from kdbench.cache_entries import hold;"
                               f" hold({str(busy)!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert [e.path for e in entries(cache)] == [oldest, middle, newest, busy]  # `hold` recorded the use
        os.utime(busy.with_name(f".{busy.name}.use"), (time.time() - 20 * 3600,) * 2)
        assert [e.path for e in entries(cache)] == [oldest, busy, middle, newest]
        removed, skipped = prune(cache, 7 * MB, log=lambda m: None)  # 12 MB held; 7 MB allowed
    finally:
        holder.kill()
        holder.wait()
    assert [e.path for e in removed] == [oldest, middle] and [e.path for e in skipped] == [busy]
    assert not oldest.exists() and not middle.exists() and busy.exists() and newest.exists()
    assert sum(e.bytes for e in entries(cache)) <= 7 * MB
    # once its user is gone the entry can go too
    removed, skipped = prune(cache, 0, log=lambda m: None)
    assert {e.path for e in removed} == {busy, newest} and not skipped and entries(cache) == []


def test_this_process_holding_an_entry_keeps_it_from_its_own_prune(tmp_path):
    cache = tmp_path / "cache"
    mine = _entry(cache, "converted", "smollm2-abc", 1, age_hours=5)
    hold(mine)
    removed, skipped = prune(cache, 0, log=lambda m: None)
    assert removed == [] and [e.path for e in skipped] == [mine]


def test_cache_ls_and_prune_commands(tmp_path, capsys):
    cache = tmp_path / "cache"
    _entry(cache, "teachers", "sst2-old", 2, age_hours=30)
    _entry(cache, "teachers", "sst2-new", 2, age_hours=1)
    assert main(["cache", "ls", f"cache_dir={cache}"]) == 0
    out = capsys.readouterr().out
    assert "sst2-old" in out and "2 entries, 0.00 GB" in out
    assert main(["cache", "prune", f"cache_dir={cache}", f"max_gb={3 * MB / GB}"]) == 0
    out = capsys.readouterr().out
    assert "evicted teachers/sst2-old" in out and "1 entries evicted" in out and "sst2-new" in out
    for args, expected in ((["cache"], "needs ls or prune"), (["cache", "prune", f"cache_dir={cache}"], "max_gb=N"),
                           (["cache", "ls", f"cache_dir={tmp_path / 'none'}"], "does not exist"),
                           (["cache", "ls", "max_gb=1"], "unknown key 'max_gb'")):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, err


def test_a_run_with_cache_max_gb_evicts_stale_entries_and_keeps_its_own(tmp_path, data_root, capsys):
    cache = tmp_path / "cache"
    stale = _entry(cache, "teachers", "mrpc-stale", 2, age_hours=48)
    logs = []
    from kdbench.config import resolve
    from kdbench.experiment import run

    cfg = resolve({"suite": "glue_enc_tiny", "method": "kd", "train.max_steps": "2", "data.max_eval_examples": "16",
                   "data_dir": str(data_root), "results_dir": str(tmp_path / "r"), "cache_dir": str(cache),
                   "cache_max_gb": str(MB / GB)})
    record = json.loads(run(cfg, log=logs.append).read_text())
    assert record["status"] == "complete" and "cache_max_gb" in record["config"]
    assert not stale.exists() and any("evicted teachers/mrpc-stale" in m for m in logs)
    kept = {e.kind for e in entries(cache)}
    assert "teachers" in kept  # the run's own fine-tuned teacher is in use by this process: kept over the bound
    assert any("remain above the bound" in m for m in logs)
