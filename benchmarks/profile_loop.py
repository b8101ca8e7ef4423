"""Where the training loop's time goes: a real `kdbench run` under torch.profiler, split by phase.

    python benchmarks/profile_loop.py                      # GLUE (SST-2) kd and LM (perplexity) kd
    python benchmarks/profile_loop.py --case lm --steps 10 -- teacher_cache=false
    python benchmarks/profile_loop.py --case glue -- method=rlkd

Each case is one in-process `kdbench run` (teacher weights taken from the cache when present: run the
suite once first, or the teacher's fine-tuning is profiled too). The runner labels every phase of a
step with `torch.profiler.record_function` ("kdbench/data", "kdbench/teacher_forward",
"kdbench/teacher_cache_read", "kdbench/student_forward", "kdbench/loss", "kdbench/backward",
"kdbench/clip_grad_norm", "kdbench/optimizer", "kdbench/checkpoint"). The table gives each phase's CPU time over the
student's training (summed over steps, per step, and as a share of the training wall time from the
record); "loop overhead" is the training wall time no phase accounts for (Python in the loop, progress
bar, logging). Checkpoints are written every `checkpoint_every` steps and after the last one. Then the top operators by self CPU time inside the training phases.

The profiler adds its own overhead per operator; shares, not absolute times, are what to read here.
`benchmarks/kd_ratios.py` gives the unprofiled step times.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

CASES = {
    # (overrides, what it is)
    "glue": (["suite=glue", "method=kd", "tasks=[sst2]", "data.max_eval_examples=64", "train.max_steps={steps}"],
             "GLUE SST-2, minilm-l6 -> minilm-l6-2l, 32 x <=128 tokens (dynamic padding)"),
    "lm": (["suite=perplexity", "method=kd", "train.max_steps={steps}", "eval.max_tokens=1024"],
           "WikiText-2, smollm2-135m -> smollm2-6l, 4 x 128 tokens, V = 49,152"),
}
PHASES = ("data", "teacher_forward", "teacher_cache_read", "student_forward", "loss", "backward",
          "clip_grad_norm", "optimizer", "checkpoint")


def profile_case(name: str, steps: int, extra: list[str], data_dir: str, cache_dir: str, top: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    from kdbench.cli import main

    overrides, what = CASES[name]
    with tempfile.TemporaryDirectory(prefix="kdbench-profile-") as results:
        argv = ["run", *[o.format(steps=steps) for o in overrides], f"data_dir={data_dir}",
                f"results_dir={results}", *extra]
        if cache_dir:
            argv.append(f"cache_dir={cache_dir}")
        print(f"\n## {name}: {what}\n$ kdbench {' '.join(argv[1:])}")
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            code = main(argv)
        if code != 0:
            sys.exit(f"kdbench run exited with {code}")
        record = json.loads(next(Path(results).rglob("*.json")).read_text())
    train_s = record["timings"]["train_s"]
    steps_done = sum(t.get("steps", 0) for t in record["throughput"].values() if "shared_with" not in t)
    events = {e.key: e for e in prof.key_averages()}
    rows, covered = [], 0.0
    for phase in PHASES:
        e = events.get(f"kdbench/{phase}")
        if e is None:
            continue
        seconds = e.cpu_time_total / 1e6
        covered += seconds
        rows.append((phase, seconds, e.count))
    rows.append(("loop overhead", max(train_s - covered, 0.0), steps_done))
    print(f"training: {steps_done} steps in {train_s:.2f} s (profiled) -> {1000 * train_s / max(steps_done, 1):.1f} ms/step;"
          f" teacher outputs: {json.dumps(record.get('teacher_outputs', {}))}")
    print(f"{'phase':<20}{'total s':>10}{'ms/step':>10}{'share':>8}")
    for phase, seconds, _ in sorted(rows, key=lambda r: -r[1]):
        print(f"{phase:<20}{seconds:>10.2f}{1000 * seconds / max(steps_done, 1):>10.1f}{100 * seconds / train_s:>7.1f}%")
    print(f"\ntop {top} operators by self CPU time (whole run, training and scoring):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=48))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), action="append", help="default: all cases")
    parser.add_argument("--steps", type=int, default=20, help="training steps per case")
    parser.add_argument("--data", default="../shared/data", help="the data root")
    parser.add_argument("--cache-dir", default="", help="kdbench cache_dir (default: kdbench's own)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("overrides", nargs="*", help="extra kdbench overrides, after --")
    args = parser.parse_args()
    for name in args.case or sorted(CASES):
        profile_case(name, args.steps, args.overrides, args.data, args.cache_dir, args.top)


if __name__ == "__main__":
    main()
