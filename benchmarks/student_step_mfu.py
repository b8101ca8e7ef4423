"""Tokens per second and model-FLOPs utilisation (MFU) of the student's training step, `none` and `kd`.

    python benchmarks/student_step_mfu.py                                  # GPU if present (bf16), else CPU
    python benchmarks/student_step_mfu.py --pairs lm --lm-shapes 4x128 16x512 --steps 30 --methods none kd fakd

For the default GLUE pair (teacher minilm-l6, student minilm-l6-2l) and the default LM pair (teacher
smollm2-135m, student smollm2-6l), loaded by kdbench's own loaders and placed by kdbench's own
accelerator (`kdbench.runner.make_accelerator("auto")`: CUDA with bf16 mixed precision where present).
It prints what kdbench chose by itself: the device, the mixed precision and autocast dtype, and each
model's attention implementation (`config._attn_implementation`).

Two measurements per method and batch shape (random token ids, every token real, no padding):
- `runner`: `kdbench.runner.train` itself for `--steps` steps (teacher forward, student forward, loss,
  backward, gradient-norm check, AdamW, schedule), after a `--warmup`-step run on another copy of the
  student; tokens/s is its `TrainStats.tokens_per_second`, the figure a record's `throughput` holds.
- `bare`: the student step alone, as `kd_ratios.py` times it: (teacher no-grad forward +) student
  forward + loss + backward + AdamW under the same autocast, synchronised; median step time.

MFU = 6 · N · tokens/s ÷ peak, with N the student's matmul parameters: all parameters except the
embedding tables that are only looked up (word, position and token-type embeddings of BERT; an input
embedding tied to the LM head counts, as the head's matmul), and `6·N_all` beside it. Attention's own
FLOPs (QKᵀ, AV) are left out. For `kd` the teacher's forward (2 · N_teacher per token) is extra work
that is not in the student's MFU; the `+teacher` column counts it too. The peak is `--peak-tflops`
(default 989.4: H100 SXM dense bf16 with no sparsity).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

H100_SXM_BF16_DENSE_TFLOPS = 989.4


def parse_shape(text: str) -> tuple[int, int]:
    batch, length = text.lower().split("x")
    return int(batch), int(length)


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters that enter a matmul: all but embedding tables that are only looked up."""
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = out.weight if out is not None else None
    lookup = {id(m.weight): m.weight.numel() for m in model.modules()
              if isinstance(m, torch.nn.Embedding) and m.weight is not head}
    return sum(p.numel() for p in model.parameters() if id(p) not in lookup)


def features(kind: str, batch: int, length: int, steps: int, seed: int = 0) -> list[dict]:
    """Rows of exactly `length` random token ids, enough for `steps` batches."""
    g = torch.Generator().manual_seed(seed)
    rows = batch * steps
    if kind == "lm":
        ids = torch.randint(5, 49152, (rows, length), generator=g).tolist()
        return [{"input_ids": r, "labels": r} for r in ids]
    ids = torch.randint(1000, 30522, (rows, length), generator=g).tolist()
    labels = torch.randint(0, 2, (rows,), generator=g).tolist()
    return [{"input_ids": r, "token_type_ids": [0] * length, "labels": y} for r, y in zip(ids, labels)]


def loader_for(kind: str, batch: int, length: int, steps: int):
    from kdbench.data.batching import Collator, LMCollator, train_loader

    collate = LMCollator(pad_id=2) if kind == "lm" else Collator(pad_id=0, regression=False)
    return train_loader(features(kind, batch, length, steps), collate, batch, seed=0)


def load_pair(kind: str):
    from kdbench.models.load import load_causal_lm, load_classifier

    # `eager`: what kdbench.experiment asks for when the method needs attention maps (SDPA returns none)
    if kind == "glue":
        return (load_classifier("minilm-l6", 2, False, 0).eval(),
                lambda eager=False: load_classifier("minilm-l6-2l", 2, False, 0, eager=eager, no_attention_dropout=eager))
    return load_causal_lm("smollm2-135m", 0).eval(), lambda eager=False: load_causal_lm("smollm2-6l", 0, eager=eager)


def method_params(kind: str, name: str) -> dict:
    # LM suites: kd at T=1 with no CE, fakd as suites/perplexity.toml sets it; GLUE keeps the methods' defaults.
    if kind == "lm" and name == "kd":
        return {"temperature": 1.0, "alpha": 1.0}
    if kind == "lm" and name == "fakd":
        return {"temperature": 1.0, "ce_weight": 0.0, "layernorm": True}
    return {}


class Setup:
    """One method on one pair, set up as kdbench.experiment does: eager attention (teacher and student) only
    when the method needs attention maps, and the method's extra module (fakd's projection) built."""

    def __init__(self, kind: str, method_name: str, teacher, make_student):
        import kdbench.methods  # noqa: F401
        from kdbench.registry import METHODS

        self.method = METHODS.get(method_name)
        self.params = self.method.make_params(method_params(kind, method_name))
        self.needs = self.method.needs(self.params)
        self.maps = "attentions" in self.needs
        self.teacher, self.make_student = teacher, make_student

    def __enter__(self):
        self.before = self.teacher.config._attn_implementation
        if self.maps:
            self.teacher.set_attn_implementation("eager")
        return self

    def __exit__(self, *exc):
        if self.maps:
            self.teacher.set_attn_implementation(self.before)

    def student(self):
        student = self.make_student(self.maps)
        state = (self.method.build_state(self.params, student.config, self.teacher.config)
                 if self.method.build_state else None)
        return student, state


def runner_rate(kind, setup: Setup, shape, steps, warmup, accelerator) -> float:
    from kdbench.config import TrainConfig
    from kdbench.distiller import Distiller
    from kdbench.runner import train
    from kdbench.teacher.source import LiveTeacher

    batch, length = shape
    rate = 0.0
    for n in (warmup, steps):  # a warm-up run on one student, then the measured run on a fresh one
        student, state = setup.student()
        cfg = TrainConfig(max_steps=n, batch_size=batch, lr=1e-5, max_length=length, log_every=10**9)
        live = LiveTeacher(setup.teacher, setup.needs, accelerator) if setup.needs else None
        stats = train(student, Distiller(setup.method, setup.params, state, live), loader_for(kind, batch, length, n),
                      cfg, accelerator, desc=f"{setup.method.name} {kind}")
        rate = stats.tokens_per_second
        del student, state
    return rate


def bare_rate(kind, setup: Setup, shape, steps, warmup, accelerator) -> tuple[float, float, str]:
    """(tokens/s from the median step, median step seconds, the student's attention implementation)."""
    from kdbench.runner import make_optimizer, make_step, model_inputs, output_flags
    from kdbench.teacher.source import LiveTeacher

    teacher, needs, method, p = setup.teacher, setup.needs, setup.method, setup.params
    batch, length = shape
    student, state = setup.student()
    attn = student.config._attn_implementation
    student = accelerator.prepare_model(student)
    student.train()
    params = list(student.parameters())
    if state is not None:
        state = state.to(accelerator.device)
        params += list(state.parameters())
    optimizer = make_optimizer(params, 1e-5, 0.01)  # as the runner builds it
    loader = loader_for(kind, batch, length, 1)
    data = {k: v.to(accelerator.device) for k, v in next(iter(loader)).items()}
    cuda = accelerator.device.type == "cuda"
    live = LiveTeacher(teacher, needs, accelerator) if needs else None

    def step():
        teacher_out = live.outputs(data) if live is not None else None
        with accelerator.autocast():
            out = student(**model_inputs(data), **output_flags(needs))
            loss, _ = method.loss(make_step(out, teacher_out, data, False), p, state)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return batch * length / median, median, attn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--pairs", nargs="*", choices=["glue", "lm"], default=["glue", "lm"])
    parser.add_argument("--methods", nargs="*", default=["none", "kd"])
    parser.add_argument("--glue-shapes", nargs="*", default=["32x128", "256x128"])
    parser.add_argument("--lm-shapes", nargs="*", default=["4x128", "16x512"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=H100_SXM_BF16_DENSE_TFLOPS)
    parser.add_argument("--no-runner", action="store_true", help="time the bare step only")
    args = parser.parse_args()

    from kdbench.models.load import count_params
    from kdbench.runner import make_accelerator

    accelerator = make_accelerator(args.device)
    with accelerator.autocast():
        dev = accelerator.device.type
        amp = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else "off"
    name = torch.cuda.get_device_name() if accelerator.device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}; kdbench chose device {accelerator.device} ({name}), mixed precision"
          f" {accelerator.mixed_precision}, autocast dtype {amp}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    peak = args.peak_tflops * 1e12
    print(f"MFU peak: {args.peak_tflops:.1f} TFLOP/s (dense, no sparsity); MFU = 6·N·tokens/s ÷ peak;"
          f" N = student matmul params (N_all in brackets); attention score FLOPs not counted")
    rows = []
    for kind in args.pairs:
        teacher, make_student = load_pair(kind)
        teacher = teacher.to(accelerator.device)
        probe = make_student()
        n_all, n_mm = count_params(probe), matmul_params(probe)
        t_mm = matmul_params(teacher)
        print(f"[{kind}] teacher {type(teacher).__name__} attn={teacher.config._attn_implementation}"
              f" params={count_params(teacher) / 1e6:.1f}M (matmul {t_mm / 1e6:.1f}M), dtype {next(teacher.parameters()).dtype};"
              f" student {type(probe).__name__} attn={probe.config._attn_implementation}"
              f" params={n_all / 1e6:.1f}M (matmul {n_mm / 1e6:.1f}M)")
        del probe
        shapes = args.glue_shapes if kind == "glue" else args.lm_shapes
        for shape in map(parse_shape, shapes):
            for method in args.methods:
                measures = []
                with Setup(kind, method, teacher, make_student) as setup:
                    if not args.no_runner:
                        measures.append(("runner", runner_rate(kind, setup, shape, args.steps, args.warmup,
                                                               accelerator), None))
                    rate, seconds, attn = bare_rate(kind, setup, shape, args.steps, args.warmup, accelerator)
                    measures.append(("bare", rate, seconds))
                    print(f"[{kind} {method}] needs {sorted(setup.needs)}: teacher attn"
                          f" {teacher.config._attn_implementation}, student attn {attn}")
                for how, rate, seconds in measures:
                    mfu = 6 * n_mm * rate / peak
                    mfu_all = 6 * n_all * rate / peak
                    with_teacher = (6 * n_mm + (2 * t_mm if method != "none" else 0)) * rate / peak
                    rows.append((kind, f"{shape[0]}x{shape[1]}", method, how, rate, seconds, mfu, mfu_all, with_teacher))
                    step = f"{seconds * 1000:7.1f} ms" if seconds else "      –   "
                    print(f"[{kind} {shape[0]}x{shape[1]} {method:4} {how:6}] {rate:12,.0f} tokens/s  step {step}"
                          f"  MFU {mfu * 100:6.2f}% (N_all {mfu_all * 100:6.2f}%)  +teacher {with_teacher * 100:6.2f}%",
                          flush=True)
        del teacher
        if accelerator.device.type == "cuda":
            torch.cuda.empty_cache()

    print()
    print("| pair | batch x len | method | timing | tokens/s | step ms | MFU (6·N_matmul) | MFU (6·N_all) | with teacher fwd |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for kind, shape, method, how, rate, seconds, mfu, mfu_all, wt in rows:
        step = f"{seconds * 1000:.1f}" if seconds else "–"
        print(f"| {kind} | {shape} | {method} | {how} | {rate:,.0f} | {step} | {mfu * 100:.2f}% | {mfu_all * 100:.2f}%"
              f" | {wt * 100:.2f}% |")


if __name__ == "__main__":
    main()
