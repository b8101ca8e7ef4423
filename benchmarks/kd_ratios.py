"""Step-time and memory ratios of kdbench's KD paths, measured side by side in one process run.

    python benchmarks/kd_ratios.py                 # P1, P2, P3 on this machine
    python benchmarks/kd_ratios.py --only p3 --repeats 3

- P1: KD step ÷ (student CE step + teacher no-grad forward), default GLUE pair and default LM pair.
  Target ≤ 1.05: distillation should cost no more than its two ingredients.
- P2: RLKD step (forward KL + rank loss at k=15) ÷ KD step (forward KL) on the LM pair (V = 49,152).
  Target ≤ 1.03 (the paper measured +1.19%).
- P3: the chunked fused-linear KD loss ÷ naive PyTorch (logits = h·Wᵀ, then forward KL), forward +
  backward at V = 49,152 and 8,192 tokens: peak extra memory (each variant in a fresh process,
  peak RSS minus RSS after the inputs exist) and time. Targets: memory ≤ 0.15, time ≤ 1.0.

Each step is forward + backward + AdamW step on real batches (random token ids of the stated shape: the
cost does not depend on the text). Timings are the median over `--repeats` after warm-up, with the
spread as (min–max); ratios are of medians. Nothing here is a unit test: it prints what it measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch


def timed(fn, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} ms ({min(values) * 1000:.1f}–{max(values) * 1000:.1f})"


def _batch(vocab: int, batch: int, length: int, lm: bool, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    labels = ids.clone() if lm else torch.randint(0, 2, (batch,), generator=g)
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if lm:
        out["position_ids"] = torch.arange(length).expand(batch, length)
    return out


def _pair(kind: str):
    from kdbench.models.load import load_causal_lm, load_classifier

    if kind == "glue":
        return (load_classifier("minilm-l6", 2, False, 0).eval(), load_classifier("minilm-l6-2l", 2, False, 0),
                _batch(30522, 32, 128, lm=False))
    return load_causal_lm("smollm2-135m", 0).eval(), load_causal_lm("smollm2-6l", 0), _batch(49152, 4, 128, lm=True)


def _stepper(method_name: str, teacher, student, batch, params: dict | None = None):
    import kdbench.methods  # noqa: F401
    from kdbench.registry import METHODS
    from kdbench.runner import make_step, model_inputs, output_flags, teacher_forward

    method = METHODS.get(method_name)
    p = method.make_params(params or {})
    needs = method.needs(p)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-5)

    def step():
        teacher_out = None
        if needs:
            with torch.no_grad():
                teacher_out = teacher_forward(teacher, batch, needs)
        out = student(**model_inputs(batch), **output_flags(needs))
        loss, _ = method.loss(make_step(out, teacher_out, batch, False), p, None)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def p1_p2(repeats: int, which: set[str]) -> None:
    from kdbench.runner import model_inputs

    for kind in ("glue", "lm"):
        if "p1" not in which and not (kind == "lm" and "p2" in which):
            continue
        teacher, student, batch = _pair(kind)
        kd_params = {} if kind == "glue" else {"temperature": 1.0, "alpha": 1.0}
        ce = timed(_stepper("none", teacher, student, batch), repeats)

        def teacher_only():
            with torch.no_grad():
                teacher(**model_inputs(batch))
        tf = timed(teacher_only, repeats)
        kd = timed(_stepper("kd", teacher, student, batch, kd_params), repeats)
        shape = "32 x 128, V=2" if kind == "glue" else "4 x 128, V=49,152"
        print(f"[{kind}: {shape}] student CE step {summary(ce)} | teacher forward {summary(tf)} | KD step {summary(kd)}")
        if "p1" in which:
            ratio = statistics.median(kd) / (statistics.median(ce) + statistics.median(tf))
            print(f"P1 {kind}: KD ÷ (CE + teacher) = {ratio:.3f}  (target ≤ 1.05: {'met' if ratio <= 1.05 else 'not met'})")
        if kind == "lm" and "p2" in which:
            rl = timed(_stepper("rlkd", teacher, student, batch, {"k": 15}), repeats)  # KL + rank, as the paper timed
            ratio = statistics.median(rl) / statistics.median(kd)
            print(f"[lm] RLKD (k=15) step {summary(rl)}")
            print(f"P2: RLKD ÷ KD = {ratio:.3f}  (target ≤ 1.03: {'met' if ratio <= 1.03 else 'not met'})")


P3_CHILD = r"""
import json, resource, sys, time, torch
from kdbench.losses import forward_kl
from kdbench.losses.chunked import fused_linear_divergence
variant, tokens, vocab, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
h = torch.randn(tokens, dim, requires_grad=True)
w = (torch.randn(vocab, dim) * 0.02).requires_grad_(True)
t = torch.randn(tokens, vocab)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
before = rss()
start = time.perf_counter()
if variant == "naive":
    loss = forward_kl(h @ w.T, t)
else:
    loss = fused_linear_divergence(forward_kl, h, w, t, chunk=512)
loss.backward()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "extra_bytes": peak - before, "loss": float(loss)}))
"""


def p3(repeats: int, tokens: int = 8192, vocab: int = 49152, dim: int = 576) -> None:
    results = {"naive": [], "chunked": []}
    for _ in range(repeats):
        for variant in results:
            out = subprocess.run([sys.executable, "-c", P3_CHILD, variant, str(tokens), str(vocab), str(dim)],
                                 capture_output=True, text=True, check=True)
            results[variant].append(json.loads(out.stdout))
    for variant, runs in results.items():
        print(f"[p3 {variant}] {tokens} tokens x V={vocab}, d={dim}: time {summary([r['seconds'] for r in runs])},"
              f" extra peak memory {statistics.median(r['extra_bytes'] for r in runs) / 2**30:.2f} GiB,"
              f" loss {runs[0]['loss']:.6f}")
    mem = statistics.median(r["extra_bytes"] for r in results["chunked"]) / statistics.median(
        r["extra_bytes"] for r in results["naive"])
    tim = statistics.median(r["seconds"] for r in results["chunked"]) / statistics.median(
        r["seconds"] for r in results["naive"])
    print(f"P3: memory {mem:.3f} (target ≤ 0.15: {'met' if mem <= 0.15 else 'not met'}),"
          f" time {tim:.3f} (target ≤ 1.0: {'met' if tim <= 1.0 else 'not met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=["p1", "p2", "p3"])
    args = parser.parse_args()
    which = set(args.only)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if which & {"p1", "p2"}:
        p1_p2(args.repeats, which)
    if "p3" in which:
        p3(max(1, min(args.repeats, 3)))


if __name__ == "__main__":
    main()
