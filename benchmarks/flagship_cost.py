"""What the flagship command costs: `kdbench run suite=glue method=rlkd`, cold (empty cache) then warm.

    python benchmarks/flagship_cost.py --data ../shared/data            # the default suite and budget
    python benchmarks/flagship_cost.py --data ../shared/data -- tasks=[sst2]

Cold: a new, empty cache_dir, so the run converts SmolLM2 from GGUF, fine-tunes the teacher per task,
scores it, fills the teacher-output cache with the examples it draws and trains the student. Warm: the
same command again with that cache (teacher weights, scores and outputs read back). Each run is a
subprocess timed by wall clock; the record's own timings give the split. Prints the wall times, the
split, and the ratios to the targets (cold 45 min, warm 15 min on 2 CPU cores). Run it on a quiet
machine: anything else on the cores inflates every number.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"cold": 45 * 60, "warm": 15 * 60}


def one_run(extra: list[str], data: str, cache: Path, results: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "kdbench", "run", "suite=glue", "method=rlkd", f"data_dir={data}",
               f"cache_dir={cache}", f"results_dir={results}", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    record = json.loads(sorted(results.glob("glue/*.json"), key=lambda p: p.stat().st_mtime)[-1].read_text())
    return seconds, record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("extra", nargs="*", help="more key=value overrides, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kdbench-flagship-") as tmp:
        cache, results = Path(tmp) / "cache", Path(tmp) / "results"
        rows = []
        for phase in ("cold", "warm"):
            seconds, record = one_run(args.extra, args.data, cache, results)
            t = record["timings"]
            rows.append((phase, seconds, t, record))
            print(f"{phase}: {seconds:.0f} s wall ({seconds / TARGETS[phase]:.2f} of the {TARGETS[phase] // 60} min target);"
                  f" teacher (fine-tune + score) {t['teacher_s']:.0f} s, student training {t['train_s']:.0f} s"
                  f" (of which teacher forwards {t['teacher_forward_s']:.0f} s), validation curve {t.get('val_s', 0):.0f} s,"
                  f" scoring {t['eval_s']:.0f} s, diagnostics {t.get('diagnostics_s', 0):.0f} s", flush=True)
            for task, meta in record.get("teacher_outputs", {}).items():
                print(f"  [{task}] teacher outputs: {meta.get('rows_read', 0)} read, {meta.get('rows_filled', 0)}"
                      f" computed ({meta.get('fill_s', 0)} s)")
        cold, warm = rows[0][3]["metrics"], rows[1][3]["metrics"]
        print(f"same scores cold and warm: {cold == warm} ({cold})")
        print(f"warm / cold = {rows[1][1] / rows[0][1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
