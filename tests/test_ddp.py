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
import subprocess

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
