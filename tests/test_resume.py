"""Checkpoints and exact resume: SIGKILL and SIGTERM at random steps, then the same command, give the
same weights (sha256), metrics and loss curve as an uninterrupted run; loading never unpickles objects."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kdbench.checkpoint import Checkpointer, rng_state, set_rng_state
from kdbench.cli import main

STEPS = 12


def _args(data_root, results, cache, *extra):
    # fakd: projections (extra modules) and dropout (the torch RNG) are both part of what must resume exactly
    return ["suite=glue_enc_tiny", "method=fakd", f"train.max_steps={STEPS}", "train.log_every=1", "checkpoint_every=1",
            "data.max_eval_examples=32", f"data_dir={data_root}", f"results_dir={results}", f"cache_dir={cache}",
            *extra]


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "glue_enc_tiny").glob("*.json"))]


def _complete(results: Path) -> dict:
    done = [r for r in _records(results) if r["status"] == "complete"]
    assert len(done) == 1, [r["status"] for r in _records(results)]
    return done[0]


def _state_step(cache: Path) -> int:
    steps = [json.loads(p.read_text())["step"] for p in (cache / "checkpoints").glob("*/state.json")]
    return max(steps, default=0)


def _start(args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kdbench", "run", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _stop_at(proc: subprocess.Popen, cache: Path, step: int, signum: int) -> tuple[int, str]:
    deadline = time.monotonic() + 300
    while _state_step(cache) < step:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)
    proc.send_signal(signum)
    return proc.wait(timeout=120), proc.stderr.read()


def _own_checkpoints(tmp_path: Path, cache_dir: Path) -> Path:
    """A cache_dir whose checkpoints are this test's own, sharing the session's (final) teacher entries."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for entry in ("teachers", "teacher_scores"):
        (cache_dir / entry).mkdir(parents=True, exist_ok=True)  # this file may run before any test filled them
        os.symlink(cache_dir / entry, cache / entry)
    return cache


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root, cache_dir):
    # Its own teacher-output entry, filled from scratch as the resumed runs fill theirs: an entry another test
    # filled first holds the same rows up to float noise (a row's values depend on the padding of the batch
    # that first drew it), and bit-identity is asked of the student, so both sides start from the same state.
    results = tmp_path_factory.mktemp("uninterrupted")
    assert main(["run", *_args(data_root, results, _own_checkpoints(tmp_path_factory.mktemp("ref"), cache_dir))]) == 0
    return _complete(results)


def test_sigkill_and_sigterm_at_random_steps_then_resume_is_bit_identical(tmp_path, data_root, cache_dir, reference):
    cache = _own_checkpoints(tmp_path, cache_dir)
    results = tmp_path / "results"
    rng = random.Random(int(time.time()))
    kill_points = sorted(rng.sample(range(1, STEPS), 3))
    signals = [signal.SIGKILL, signal.SIGTERM, signal.SIGKILL]
    args = _args(data_root, results, cache)
    stopped_at = []
    for point, signum in zip(kill_points, signals):
        code, err = _stop_at(_start(args), cache, point, signum)
        stopped_at.append(_state_step(cache))
        if signum == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:  # a clean stop: the step finishes, a checkpoint is written, one line, no traceback
            assert code == 128 + signal.SIGTERM, err
            assert "stopped by SIGTERM after step" in err and "Traceback" not in err, err
    assert main(["run", *args]) == 0
    resumed = _complete(results)
    info = f"kill points {kill_points}, stopped at checkpoint steps {stopped_at}"
    assert resumed["student_sha256"] == reference["student_sha256"], info
    assert resumed["metrics"] == reference["metrics"], info
    assert resumed["loss_curves"] == reference["loss_curves"], info
    assert resumed["resumed_from_step"]["sst2"] == stopped_at[-1], info
    # nothing is lost or left behind: every killed run's record says it was interrupted, the checkpoint is gone
    others = [r for r in _records(results) if r["status"] != "complete"]
    assert all(r["status"] == "interrupted" and not r["metrics"] for r in others), others
    assert not list((cache / "checkpoints").glob("*/state.pt"))


def test_resume_false_starts_over(tmp_path, data_root, cache_dir, reference, capsys):
    cache = _own_checkpoints(tmp_path, cache_dir)
    args = _args(data_root, tmp_path / "results", cache)
    code, _ = _stop_at(_start(args), cache, 3, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert main(["run", *args, "resume=false"]) == 0
    record = _complete(tmp_path / "results")
    assert "resumed_from_step" not in record
    assert record["student_sha256"] == reference["student_sha256"]


def _checkpointer(tmp_path) -> Checkpointer:
    return Checkpointer(tmp_path / "ckpt", every=1)


def test_a_checkpoint_round_trips_tensors_and_every_rng(tmp_path):
    ckpt = _checkpointer(tmp_path)
    torch.manual_seed(3)
    state = {"step": 5, "weights": {"w": torch.randn(3, 2)}, "rng": rng_state()}
    expected = torch.rand(4)
    ckpt.save(state)
    torch.manual_seed(99)
    loaded = ckpt.load()
    set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(4), expected)
    assert torch.equal(loaded["weights"]["w"], state["weights"]["w"]) and loaded["step"] == 5
    assert Checkpointer(ckpt.folder, every=1, resume=False).load() is None


def test_a_corrupted_checkpoint_is_an_error_naming_the_fix(tmp_path, data_root, cache_dir, capsys):
    ckpt = _checkpointer(tmp_path)
    ckpt.save({"step": 1, "w": torch.zeros(1000)})
    data = bytearray(ckpt.state_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.state_file.write_bytes(bytes(data))
    with pytest.raises(Exception, match="corrupted: state.pt is missing or does not match.*resume=false"):
        ckpt.load()


def test_loading_never_unpickles_an_object(tmp_path):
    """A state.pt that would run code when unpickled is refused, even with a matching hash in state.json."""
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt = _checkpointer(tmp_path)
    ckpt.save({"step": 1})
    torch.save({"format": 1, "step": 1, "payload": Evil()}, ckpt.state_file)
    meta = json.loads(ckpt.meta_file.read_text())
    from kdbench.files import file_sha256
    ckpt.meta_file.write_text(json.dumps({**meta, "sha256": file_sha256(ckpt.state_file)}))
    with pytest.raises(Exception, match="corrupted: state.pt does not load"):
        ckpt.load()
    assert not marker.exists()
    assert pickle  # the payload above is a real pickle of os.system, not a mock


def test_checkpoint_every_must_not_be_negative(capsys):
    assert main(["run", "suite=glue_enc_tiny", "checkpoint_every=-1", "dry_run=true"]) == 2
    assert "checkpoint_every must be >= 0" in capsys.readouterr().err


def test_a_killed_teacher_fine_tuning_resumes_to_the_same_teacher(tmp_path, data_root, capsys):
    def args(cache):
        return ["suite=glue_enc_tiny", "method=none", "train.max_steps=1", "teacher_train.max_steps=10",
                "checkpoint_every=1", "data.max_eval_examples=16", f"data_dir={data_root}",
                f"results_dir={tmp_path / 'r'}", f"cache_dir={cache}"]

    def teacher_files(cache):
        (entry,) = (cache / "teachers").glob("sst2-*")
        return json.loads((entry / "meta.json").read_text())["files"]

    assert main(["run", *args(tmp_path / "uninterrupted")]) == 0
    cache = tmp_path / "killed"
    code, _ = _stop_at(_start(args(cache)), cache, 4, signal.SIGKILL)
    assert code == -signal.SIGKILL and not list(cache.glob("teachers/sst2-*"))  # killed while fine-tuning
    stopped = _state_step(cache)
    capsys.readouterr()
    assert main(["run", *args(cache)]) == 0
    out = capsys.readouterr().out
    assert f"resuming teacher sst2 from the checkpoint at step {stopped}" in out and "marked interrupted" in out
    assert teacher_files(cache) == teacher_files(tmp_path / "uninterrupted")  # same weights, byte for byte
    assert not list((cache / "checkpoints").glob("teacher-*/state.pt"))  # cleared once the teacher is cached


@pytest.mark.parametrize("method", [
    # distillm from θ = 1 with a 4-sample buffer: every step samples or replays, so the resumed run must restore
    # the policy's buffer and θ and draw the same samples for the steps it has still to run.
    ["method=distillm", "method.init_threshold=1", "method.replay_size=4"],
    # minillm in rounds of 4 samples trained twice: a stop mid-round must restore the round's store and order.
    ["method=minillm", "method.num_rollouts=4", "method.ppo_epochs=2", "method.max_new_tokens=8"],
], ids=["distillm", "minillm"])
def test_an_on_policy_run_resumes_to_the_same_student_samples_and_policy_state(tmp_path, data_root, cache_dir, method):
    def args(results, cache):
        return ["suite=char_tiny", *method, "train.max_steps=10", "checkpoint_every=1", f"data_dir={data_root}",
                f"results_dir={results}", f"cache_dir={cache}"]

    def complete(results):
        (record,) = [json.loads(p.read_text()) for p in (results / "char_tiny").glob("*.json")
                     if json.loads(p.read_text())["status"] == "complete"]
        return record

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(["run", *args(tmp_path / "whole", _own_checkpoints(tmp_path / "a", cache_dir))]) == 0
    whole = complete(tmp_path / "whole")
    cache = _own_checkpoints(tmp_path / "b", cache_dir)
    code, err = _stop_at(_start(args(tmp_path / "resumed", cache)), cache, 5, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err
    assert main(["run", *args(tmp_path / "resumed", cache)]) == 0
    resumed = complete(tmp_path / "resumed")
    assert resumed["resumed_from_step"]["shakespeare"] >= 5
    assert resumed["student_sha256"] == whole["student_sha256"]
    strip = lambda on_policy: {k: v for k, v in on_policy.items() if k != "generation_s"}  # noqa: E731
    assert strip(resumed["on_policy"]["shakespeare"]) == strip(whole["on_policy"]["shakespeare"])
