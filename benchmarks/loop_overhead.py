"""What kdbench's training loop adds to a step: `kdbench.runner.train` with method `none` ÷ a bare PyTorch loop.

    python benchmarks/loop_overhead.py                      # GLUE pair (32 x 128) and LM pair (4 x 128)
    python benchmarks/loop_overhead.py --pairs glue --steps 20 --rounds 5

The bare loop is written here, not imported: the same student (same initial weights), the same batch, the
same optimizer and schedule (fused AdamW, linear warm-up and decay), the same gradient clipping, and the
loss written by hand (CE on the labels; for the causal LM on the next token). kdbench's side is the real
`runner.train` (accelerator, Step, method loss, NaN guard, loss curve, progress bar), timed by its own
`TrainStats.seconds` over `--steps` steps. Each round runs both, alternating which goes first, and the
ratio is of the medians of the per-step times over rounds. Target (issue "Open the house"): ≤ 1.03.
Nothing here is a unit test; run it on a quiet machine, and say so when it was not.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = {"glue": (32, 128, 30522), "lm": (4, 128, 49152)}  # batch, length, vocabulary


def _batch(kind: str) -> dict:
    batch, length, vocab = SHAPES[kind]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (batch, length), generator=g)
    labels = ids.clone() if kind == "lm" else torch.randint(0, 2, (batch,), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def _student(kind: str):
    from kdbench.models.load import load_causal_lm, load_classifier

    return load_classifier("minilm-l6-2l", 2, False, 0) if kind == "glue" else load_causal_lm("smollm2-6l", 0)


def _config(steps: int, kind: str):
    from kdbench.config import TrainConfig

    batch, length, _ = SHAPES[kind]
    return TrainConfig(max_steps=steps, batch_size=batch, lr=1e-5, max_length=length, log_every=max(steps, 1))


def kdbench_step_seconds(model, batch: dict, steps: int, kind: str) -> float:
    import kdbench.methods  # noqa: F401
    from kdbench.registry import METHODS
    from kdbench.distiller import Distiller
    from kdbench.runner import make_accelerator, train

    none = METHODS.get("none")
    params = none.make_params({})
    size = batch["input_ids"].shape[0]
    rows = [{k: v[i] for k, v in batch.items()} for i in range(size)] * steps  # the same batch every step
    loader = torch.utils.data.DataLoader(rows, batch_size=size, shuffle=False,
                                         collate_fn=lambda xs: {k: torch.stack([x[k] for x in xs]) for k in xs[0]})
    stats = train(model, Distiller(none, params), loader, _config(steps, kind),
                  make_accelerator("cpu"), desc=f"kdbench {kind}")
    return stats.seconds / steps


def bare_step_seconds(model, batch: dict, steps: int, kind: str) -> float:
    from transformers import get_linear_schedule_with_warmup

    cfg = _config(steps, kind)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    schedule = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps + 0.999), steps)
    model.train()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    start = time.perf_counter()
    for _ in range(steps):
        logits = model(**inputs).logits
        if kind == "lm":  # next-token CE
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                   batch["labels"][:, 1:].reshape(-1))
        else:
            loss = F.cross_entropy(logits.float(), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=["glue", "lm"], choices=sorted(SHAPES))
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=5, help="blocks of each, alternating which runs first")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for kind in args.pairs:
        batch = _batch(kind)
        base = _student(kind)
        kd, bare = [], []
        for r in range(args.rounds):
            order = (("kdbench", kd), ("bare", bare)) if r % 2 == 0 else (("bare", bare), ("kdbench", kd))
            for name, out in order:
                model = copy.deepcopy(base)  # the same initial weights for both sides, every round
                fn = kdbench_step_seconds if name == "kdbench" else bare_step_seconds
                out.append(fn(model, batch, args.steps, kind))
        k, b = statistics.median(kd), statistics.median(bare)
        shape = "x".join(str(x) for x in SHAPES[kind][:2])
        print(f"[{kind} {shape}] kdbench none step {k * 1000:.1f} ms ({min(kd) * 1000:.1f}–{max(kd) * 1000:.1f}) |"
              f" bare loop {b * 1000:.1f} ms ({min(bare) * 1000:.1f}–{max(bare) * 1000:.1f}) |"
              f" ratio {k / b:.3f} (target ≤ 1.03: {'met' if k / b <= 1.03 else 'not met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
