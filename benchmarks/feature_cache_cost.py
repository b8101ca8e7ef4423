"""What fakd costs per step on the char track with its teacher's features cached, against the live teacher.

    python benchmarks/feature_cache_cost.py --data ../shared/data                 # 300 steps a run
    python benchmarks/feature_cache_cost.py --data ../shared/data --steps 50 --suite char_tiny

fakd needs the teacher's hidden states and attention maps at every step. Until small-vocabulary LMs kept them
in the teacher-output cache, the char teacher (4 x 256, 350 times the 1 x 32 student) ran live every step:
about 0.45 s of a 0.5 s step at one thread, 50 minutes of a 6,000-step run against `none`'s 2. This runs, in
one fresh cache folder (so the first cached run really fills its entry) and at one torch thread each:

- `none` and `kd` (kd reads the cached logits: the reference for a cached teacher);
- fakd with `teacher_cache=false` (the teacher live every step, as before);
- fakd cached, first run (fills the rows it draws) and second run (same seed: every row is read).

The teacher is trained for `--teacher-steps` only: a step's cost depends on the teacher's shape, not its
training. Prints seconds per training step, the teacher's share of it, and each run as a ratio of `none` and of
fakd live, then a projection (labelled as one) of a full run at the suite's budget. Run it on a quiet
machine: anything else on the cores inflates every number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

# label -> (method, overrides)
RUNS = {"none": ("none", []), "kd": ("kd", []), "fakd live": ("fakd", ["teacher_cache=false"]),
        "fakd fill": ("fakd", []), "fakd read": ("fakd", [])}


def one_run(label: str, args, cache: str, results: Path) -> dict:
    method, overrides = RUNS[label]
    out = results / label.replace(" ", "_")
    command = [sys.executable, "-m", "kdbench", "run", f"suite={args.suite}", f"method={method}",
               f"data_dir={args.data}", f"cache_dir={cache}", f"results_dir={out}", f"train.max_steps={args.steps}",
               f"teacher_train.max_steps={args.teacher_steps}", "eval_every=0", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(next(out.glob(f"{args.suite}/*.json")).read_text())


def suite_steps(suite: str) -> int:
    path = Path(__file__).resolve().parent.parent / "suites" / f"{suite}.toml"
    return int(tomllib.loads(path.read_text())["train"]["max_steps"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the data root (../shared/data)")
    parser.add_argument("--suite", default="char")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--teacher-steps", type=int, default=20)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in RUNS:
            record = one_run(label, args, str(Path(tmp) / "cache"), Path(tmp) / "results")
            t = record["timings"]
            cache = next(iter(record.get("teacher_outputs", {}).values()), {})
            rows[label] = {"step_s": t["train_s"] / args.steps, "teacher": t["teacher_forward_s"] / t["train_s"],
                           "filled": cache.get("rows_filled", "-"), "read": cache.get("rows_read", "-")}
    none, live = rows["none"]["step_s"], rows["fakd live"]["step_s"]
    print(f"suite={args.suite}, {args.steps} steps a run, one torch thread, teacher trained {args.teacher_steps} steps")
    print(f"{'run':<10} {'s/step':>8} {'x none':>7} {'x fakd live':>12} {'teacher':>8} {'rows filled':>12} {'rows read':>10}")
    for label, r in rows.items():
        print(f"{label:<10} {r['step_s']:>8.4f} {r['step_s'] / none:>7.2f} {r['step_s'] / live:>12.3f}"
              f" {r['teacher']:>8.1%} {r['filled']:>12} {r['read']:>10}")
    budget = suite_steps(args.suite)
    print(f"projection, not a measurement: a {budget}-step fakd run at these step times takes"
          f" {budget * live / 60:.0f} min with the teacher live and {budget * rows['fakd read']['step_s'] / 60:.1f} min"
          " once its cache entry is full (the first run also pays one teacher forward per training example)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
