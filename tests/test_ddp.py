"""Two-process DDP over gloo (accelerate on torchrun) gives the single-process result within float noise.

accelerate 1.15's `accelerate launch --cpu --num_processes 2` starts ONE process here (its multi-CPU path
needs mpirun); `ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2` starts two
torchrun workers that accelerate runs as MULTI_CPU with gloo. perplexity_tiny has no dropout, and every
block has the same token count, so each optimizer step sees exactly the same examples and the same mean
loss in both set-ups (each process takes half of every batch: split_batches); what remains is the order of
floating-point sums in the gradient all-reduce (measured: perplexity 50440.375 vs 50440.387, 2.4e-7).
"""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from kdbench.cli import main


def _record(folder):
    files = list((folder / "perplexity_tiny").glob("*.json"))
    assert len(files) == 1, files  # one record: the other process writes none
    return json.loads(files[0].read_text())


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not on PATH")
def test_two_process_ddp_matches_one_process(tmp_path, data_root, cache_dir):
    args = ["suite=perplexity_tiny", "method=kd", "train.max_steps=4", f"data_dir={data_root}",
            f"cache_dir={cache_dir}"]
    assert main(["run", *args, f"results_dir={tmp_path / 'one'}"]) == 0
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    launch = [shutil.which("accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
              "-m", "kdbench", "run", *args, f"results_dir={tmp_path / 'two'}"]
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = _record(tmp_path / "one"), _record(tmp_path / "two")
    assert two["device"]["processes"] == 2 and one["device"]["processes"] == 1
    ppl_one, ppl_two = one["metrics"]["wikitext2"]["perplexity"], two["metrics"]["wikitext2"]["perplexity"]
    assert abs(ppl_two - ppl_one) / ppl_one < 1e-5, (ppl_one, ppl_two)
    curve_one = [point[1] for point in one["loss_curves"]["wikitext2"]]
    curve_two = [point[1] for point in two["loss_curves"]["wikitext2"]]  # the whole batch's loss, all-reduced
    assert curve_two == pytest.approx(curve_one, rel=1e-4), (curve_one, curve_two)
    # both processes' slices are counted: the same examples per step as the single process
    assert two["throughput"]["wikitext2"]["steps"] == one["throughput"]["wikitext2"]["steps"] == 4


@pytest.mark.parametrize("env,noted", [
    ({"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1"}, True),  # accelerate launch --cpu, N > 1
    ({"ACCELERATE_USE_CPU": "True"}, False),  # --num_processes 1: no MASTER_ADDR
    ({"ACCELERATE_USE_CPU": "true", "MASTER_ADDR": "127.0.0.1", "WORLD_SIZE": "2"}, False),  # torchrun workers
    ({"ACCELERATE_USE_CPU": "true", "MASTER_ADDR": "h", "OMPI_COMM_WORLD_RANK": "0"}, False),  # under mpirun
    ({"MASTER_ADDR": "127.0.0.1"}, False),  # not a CPU launch
])
def test_the_one_process_cpu_launch_is_named(env, noted):
    from kdbench.cli import cpu_launch_note

    assert (cpu_launch_note(env) is not None) == noted


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not on PATH")
def test_accelerate_launch_cpu_with_two_processes_says_it_started_one(tmp_path, data_root):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [shutil.which("accelerate"), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "kdbench", "run",
              "suite=perplexity_tiny", "dry_run=true", f"data_dir={data_root}", f"results_dir={tmp_path}"]
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("started one process") == 1  # one process ran, and it said so


def _launch_two(args, port: int) -> list[str]:
    return [shutil.which("accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
            "-m", "kdbench", "run", *args]


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not on PATH")
def test_two_process_sigterm_and_resume_matches_an_uninterrupted_two_process_run(tmp_path, data_root, cache_dir):
    """fakd on glue_enc_tiny draws dropout in each process from that process's own RNG, so a resumed DDP run
    equals the uninterrupted one only if the checkpoint brought back every process's RNG states. SIGTERM
    goes to the launcher, which passes it on to both workers; they stop after the same step."""
    from tests.test_resume import _own_checkpoints, _state_step

    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}

    def args(name):
        (tmp_path / name).mkdir()
        return ["suite=glue_enc_tiny", "method=fakd", "train.max_steps=8", "train.log_every=1", "checkpoint_every=1",
                "data.max_eval_examples=32", f"data_dir={data_root}", f"results_dir={tmp_path / name / 'results'}",
                f"cache_dir={_own_checkpoints(tmp_path / name, cache_dir)}"]
    reference = subprocess.run(_launch_two(args("ref"), 29521), env=env, capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]
    stopped_args = args("stopped")
    cache = tmp_path / "stopped" / "cache"
    proc = subprocess.Popen(_launch_two(stopped_args, 29522), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while _state_step(cache) < 3:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    code, err = proc.wait(timeout=180), proc.stderr.read()
    assert code != 0 and "stopped by SIGTERM after step" in err, err[-3000:]
    stopped_at = _state_step(cache)
    assert stopped_at < 8, "the run finished before the signal arrived"
    resumed = subprocess.run(_launch_two(stopped_args, 29523), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (ref,) = [json.loads(p.read_text()) for p in (tmp_path / "ref" / "results" / "glue_enc_tiny").glob("*.json")]
    done = [json.loads(p.read_text()) for p in (tmp_path / "stopped" / "results" / "glue_enc_tiny").glob("*.json")]
    (again,) = [r for r in done if r["status"] == "complete"]
    assert again["device"]["processes"] == ref["device"]["processes"] == 2
    assert again["resumed_from_step"]["sst2"] == stopped_at
    assert again["student_sha256"] == ref["student_sha256"], f"stopped at step {stopped_at}"
    assert again["metrics"] == ref["metrics"] and again["loss_curves"] == ref["loss_curves"]
