"""Step-time and memory ratios of kdbench's KD paths, measured side by side in one process run.

    python benchmarks/kd_ratios.py                 # P1, P2, P3 on this machine
    python benchmarks/kd_ratios.py --only p3 --repeats 3
    python benchmarks/kd_ratios.py --device cuda --lm-batch 16 --lm-len 512   # on a GPU, bf16 autocast

- P1: KD step ÷ (student CE step + teacher no-grad forward), default GLUE pair and default LM pair.
  Target ≤ 1.05: distillation should cost no more than its two ingredients.
- P2: RLKD step (forward KL + rank loss at k=15) ÷ KD step (forward KL) on the LM pair (V = 49,152).
  Target ≤ 1.03 (the paper measured +1.19%).
- P3: the forward KL every method trains on (`kdbench.losses.forward_kl`, mean: its chunked path with the
  gradient written out) ÷ the same formula under autograd, logits = h·Wᵀ in both, forward + backward at
  V = 49,152 and 8,192 tokens: peak extra memory (each variant in a fresh process, peak RSS minus RSS
  after the inputs exist) and time. Target: ≤ 1.0 on both. (Until 2026-12-01 P3 timed a fused-linear
  loss, which no method used; it was removed, and its measurements in the README are that form's.)

Each step is forward + backward + AdamW step on real batches (random token ids of the stated shape: the
cost does not depend on the text). Timings are the median over `--repeats` after warm-up, with the
spread as (min–max); ratios are of medians. Nothing here is a unit test: it prints what it measured.

`--device cuda`: models and batches on the GPU, the student prepared by kdbench's own accelerator
(`kdbench.runner.make_accelerator`: bf16 mixed precision) and every forward under its autocast, as
`kdbench.runner.train` runs them; `torch.cuda.synchronize()` around each timed call. P3 then runs both
variants in this process: extra memory = `torch.cuda.max_memory_allocated()` (peak stats reset) minus
the memory allocated once the inputs exist, for fp32 inputs under bf16 autocast and in plain fp32.
Batch shapes default to the CPU ones (GLUE 32 x 128, LM 4 x 128, P3 8,192 tokens); `--glue-batch`,
`--glue-len`, `--lm-batch`, `--lm-len`, `--p3-tokens` set larger ones. Every line names its shape.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time

import torch

# Set by main(): "cpu" keeps the original CPU path; "cuda" moves everything to the GPU under bf16 autocast.
DEVICE = "cpu"
ACCELERATOR = None


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _autocast():
    """kdbench's training autocast on CUDA (accelerate, bf16); nothing on the CPU path."""
    return ACCELERATOR.autocast() if DEVICE == "cuda" else contextlib.nullcontext()


def timed(fn, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync()
    out = []
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
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


SHAPES = {"glue": (32, 128), "lm": (4, 128)}  # (batch, length); main() may override them


def _pair(kind: str):
    from kdbench.models.load import load_causal_lm, load_classifier

    batch, length = SHAPES[kind]
    if kind == "glue":
        teacher, student = load_classifier("minilm-l6", 2, False, 0).eval(), load_classifier("minilm-l6-2l", 2, False, 0)
        data = _batch(30522, batch, length, lm=False)
    else:
        teacher, student = load_causal_lm("smollm2-135m", 0).eval(), load_causal_lm("smollm2-6l", 0)
        data = _batch(49152, batch, length, lm=True)
    if DEVICE == "cuda":
        teacher = teacher.to("cuda")
        student = ACCELERATOR.prepare_model(student)  # as kdbench.runner.train prepares the student
        data = {k: v.to("cuda") for k, v in data.items()}
        print(f"[{kind}] attention: teacher {teacher.config._attn_implementation},"
              f" student {student.config._attn_implementation}; mixed precision {ACCELERATOR.mixed_precision}")
    return teacher, student, data


def _stepper(method_name: str, teacher, student, batch, params: dict | None = None):
    import kdbench.methods  # noqa: F401
    from kdbench.registry import METHODS
    from kdbench.runner import make_optimizer, make_step, model_inputs, output_flags
    from kdbench.teacher.outputs import TeacherOut

    method = METHODS.get(method_name)
    p = method.make_params(params or {})
    needs = method.needs(p)
    optimizer = make_optimizer(list(student.parameters()), 1e-5, 0.01)  # as the runner builds it

    def step():
        teacher_out = None
        if needs:
            with torch.no_grad(), _autocast():
                teacher_out = TeacherOut.of(teacher(**model_inputs(batch), **output_flags(needs)), batch)
        with _autocast():
            out = student(**model_inputs(batch), **output_flags(needs))
            loss, _ = method.loss(make_step(out, teacher_out, batch, False), p, None)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def p1_p2(repeats: int, which: set[str], pairs: tuple = ("glue", "lm")) -> None:
    from kdbench.runner import model_inputs

    for kind in pairs:
        if "p1" not in which and not (kind == "lm" and "p2" in which):
            continue
        teacher, student, batch = _pair(kind)
        kd_params = {} if kind == "glue" else {"temperature": 1.0, "alpha": 1.0}
        ce = timed(_stepper("none", teacher, student, batch), repeats)

        def teacher_only():
            with torch.no_grad(), _autocast():
                teacher(**model_inputs(batch))
        tf = timed(teacher_only, repeats)
        kd = timed(_stepper("kd", teacher, student, batch, kd_params), repeats)
        shape = f"{SHAPES[kind][0]} x {SHAPES[kind][1]}, " + ("V=2" if kind == "glue" else "V=49,152")
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
if variant == "naive":  # the formula under autograd
    loss = forward_kl(h @ w.T, t, reduction="none").mean()
else:  # what every method trains on: the chunked path with its gradient written out
    loss = forward_kl(h @ w.T, t)
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
    print(f"P3: memory {mem:.3f} (target ≤ 1.0: {'met' if mem <= 1.0 else 'not met'}),"
          f" time {tim:.3f} (target ≤ 1.0: {'met' if tim <= 1.0 else 'not met'})")


def p3_cuda(repeats: int, tokens: int = 8192, vocab: int = 49152, dim: int = 576) -> None:
    """P3 on the GPU, both variants in this process: peak allocated memory above what the inputs hold."""
    from kdbench.losses import forward_kl

    def once(variant: str, precision: str) -> dict:
        torch.manual_seed(0)
        h = torch.randn(tokens, dim, device="cuda", requires_grad=True)
        w = (torch.randn(vocab, dim, device="cuda") * 0.02).requires_grad_(True)
        t = torch.randn(tokens, vocab, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        start = time.perf_counter()
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with amp:
            if variant == "naive":
                loss = forward_kl(h @ w.T, t, reduction="none").mean()
            else:
                loss = forward_kl(h @ w.T, t)
        loss.backward()
        torch.cuda.synchronize()
        out = {"seconds": time.perf_counter() - start, "extra_bytes": torch.cuda.max_memory_allocated() - before,
               "loss": float(loss.detach())}
        del h, w, t, loss
        return out

    for precision in ("bf16", "fp32"):
        results = {"naive": [], "chunked": []}
        for variant in results:
            once(variant, precision)  # warm-up: cuBLAS handles, kernels
        for _ in range(repeats):
            for variant in results:
                results[variant].append(once(variant, precision))
        label = "bf16 autocast" if precision == "bf16" else "fp32"
        for variant, runs in results.items():
            print(f"[p3 cuda {label} {variant}] {tokens} tokens x V={vocab}, d={dim}: time"
                  f" {summary([r['seconds'] for r in runs])}, extra peak memory"
                  f" {statistics.median(r['extra_bytes'] for r in runs) / 2**30:.3f} GiB, loss {runs[0]['loss']:.6f}")
        mem = statistics.median(r["extra_bytes"] for r in results["chunked"]) / statistics.median(
            r["extra_bytes"] for r in results["naive"])
        tim = statistics.median(r["seconds"] for r in results["chunked"]) / statistics.median(
            r["seconds"] for r in results["naive"])
        print(f"P3 (cuda, {label}): memory {mem:.3f} (target ≤ 1.0: {'met' if mem <= 1.0 else 'not met'}),"
              f" time {tim:.3f} (target ≤ 1.0: {'met' if tim <= 1.0 else 'not met'})")


def kl_loss(repeats: int, chunks=(16, 32, 64, 128)) -> None:
    """The forward-KL term alone (forward + backward) at the LM step's shape: autograd through
    `forward_kl` vs `fused_forward_kl` (what `kd` and `rlkd` use), per chunk size."""
    from kdbench.losses import forward_kl
    from kdbench.losses.fused_kl import fused_forward_kl

    batch, length = SHAPES["lm"]
    g = torch.Generator().manual_seed(0)
    shape = (batch, length - 1, 49152)
    s0, t = torch.randn(*shape, generator=g).to(DEVICE), (torch.randn(*shape, generator=g) * 2).to(DEVICE)
    mask = torch.ones(shape[:-1], dtype=torch.bool, device=DEVICE)

    def run(fn):
        def once():
            s = s0.clone().requires_grad_(True)
            fn(s).backward()
        return once
    ref = timed(run(lambda s: forward_kl(s, t, mask)), repeats)
    print(f"[kl {shape[0]} x {shape[1]} x V={shape[2]}] forward_kl (autograd) {summary(ref)}")
    for chunk in chunks:
        fused = timed(run(lambda s: fused_forward_kl(s, t, mask, chunk=chunk)), repeats)
        print(f"[kl] fused_forward_kl, chunk {chunk:>4} {summary(fused)}  ratio {statistics.median(fused) / statistics.median(ref):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=["p1", "p2", "p3"], help="p1 p2 p3 kl")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--pairs", nargs="*", choices=["glue", "lm"], default=["glue", "lm"])
    parser.add_argument("--glue-batch", type=int, default=SHAPES["glue"][0])
    parser.add_argument("--glue-len", type=int, default=SHAPES["glue"][1])
    parser.add_argument("--lm-batch", type=int, default=SHAPES["lm"][0])
    parser.add_argument("--lm-len", type=int, default=SHAPES["lm"][1])
    parser.add_argument("--p3-tokens", type=int, default=8192)
    args = parser.parse_args()
    which = set(args.only)
    global DEVICE, ACCELERATOR
    DEVICE = args.device
    SHAPES["glue"], SHAPES["lm"] = (args.glue_batch, args.glue_len), (args.lm_batch, args.lm_len)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if DEVICE == "cuda":
        from kdbench.runner import make_accelerator

        ACCELERATOR = make_accelerator("cuda")
        with ACCELERATOR.autocast():
            amp = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else "off"
        print(f"device {torch.cuda.get_device_name()}, accelerator mixed precision {ACCELERATOR.mixed_precision},"
              f" autocast dtype {amp}")
    print(f"shapes: glue {SHAPES['glue'][0]} x {SHAPES['glue'][1]}, lm {SHAPES['lm'][0]} x {SHAPES['lm'][1]},"
          f" p3 {args.p3_tokens} tokens")
    if "kl" in which:
        kl_loss(args.repeats)
    if which & {"p1", "p2"}:
        p1_p2(args.repeats, which, tuple(args.pairs))
    if "p3" in which:
        if DEVICE == "cuda":
            p3_cuda(max(1, min(args.repeats, 3)), tokens=args.p3_tokens)
        else:
            p3(max(1, min(args.repeats, 3)), tokens=args.p3_tokens)


if __name__ == "__main__":
    main()
