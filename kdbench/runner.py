"""The one training loop, shared by every method and by the teacher's fine-tuning.

Per step: the teacher's outputs from the run's TeacherSource (live or cached), student forward,
the Distiller's loss, backward, gradient clipping, AdamW and a linear warm-up/decay schedule. The
loop's own state (TrainState) is what a checkpoint saves besides the weights and the optimizer. Runs
on accelerate: CPU here, CUDA with bf16 autocast where present.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from accelerate.utils import send_to_device
from torch.profiler import record_function
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from kdbench import stop_signals, trackers
from kdbench.checkpoint import Checkpointer, rng_state, set_rng_state
from kdbench.config import TrainConfig
from kdbench.convergence import auto_eval_every, better_point
from kdbench.distiller import Distiller
from kdbench.methods.base import Step
from kdbench.rollouts import on_policy_batch


@dataclass
class TrainStats:
    steps: int = 0
    examples: int = 0
    tokens: int = 0  # non-pad input tokens
    seconds: float = 0.0
    teacher_seconds: float = 0.0  # time inside the teacher's forward
    skipped_steps: list = field(default_factory=list)  # nan_policy=skip: [step, what was not finite]
    loss_curve: list = field(default_factory=list)  # [step, mean loss since the last point, {part: mean}]
    resumed_from: int = 0  # the step of the checkpoint this training resumed from (0: none)
    teacher_outputs: dict = field(default_factory=dict)  # whether cached teacher outputs were used, and why
    curve: list = field(default_factory=list)  # [step, validation loss, {metric: value}] (kdbench.convergence)
    val_seconds: float = 0.0  # time spent on the validation curve (not counted in `seconds`)
    kept_step: int | None = None  # keep="best": the step whose weights training handed on
    # an on-policy method's data (kdbench.rollouts): micro-batches per source, samples, sampled tokens,
    # generation seconds (inside `seconds`), and its policy's summary
    on_policy: dict = field(default_factory=dict)

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def uses_cuda(device: str) -> bool:
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def mixed_precision_for(device: str, precision: str = "auto") -> str:
    """What a run with these `device` and `precision` settings trains in on this machine: "bf16" on CUDA
    unless precision="fp32", else "no" (fp32)."""
    return "bf16" if precision == "auto" and uses_cuda(device) and torch.cuda.is_bf16_supported() else "no"


def make_accelerator(device: str, log_with: tuple = (), project_dir=None, precision: str = "auto"):
    """accelerate on the requested device; bf16 mixed precision on CUDA unless precision="fp32"; `log_with`:
    its trackers, writing under `project_dir` (kdbench.trackers)."""
    from accelerate import Accelerator, DataLoaderConfiguration

    use_cuda = uses_cuda(device)
    if device == "cuda" and not torch.cuda.is_available():
        from kdbench.errors import KdbenchError

        raise KdbenchError("device=cuda but no CUDA device is visible; use device=auto or device=cpu")
    mixed = mixed_precision_for(device, precision)
    # Under `accelerate launch` / torchrun every process takes its slice of each batch (split_batches):
    # the optimizer step sees the same train.batch_size examples as a single process does.
    return Accelerator(cpu=not use_cuda, mixed_precision=mixed,
                       dataloader_config=DataLoaderConfiguration(split_batches=True),
                       log_with=list(log_with) or None, project_dir=str(project_dir) if project_dir else None)


def make_schedule(optimizer, cfg):
    """The learning-rate schedule `cfg.schedule` after a linear warm-up over `cfg.warmup_ratio` of the steps."""
    import transformers

    warmup = math.ceil(cfg.warmup_ratio * cfg.max_steps)
    if cfg.schedule == "constant":
        return transformers.get_constant_schedule_with_warmup(optimizer, warmup)
    make = {"linear": transformers.get_linear_schedule_with_warmup,
            "cosine": transformers.get_cosine_schedule_with_warmup}[cfg.schedule]
    return make(optimizer, warmup, max(cfg.max_steps, 1))


def make_optimizer(params: list, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with PyTorch's fused kernel: one pass over each parameter instead of one per operation.

    Measured with benchmarks/profile_loop.py: the default (per-tensor) AdamW was 36% of a GLUE student step
    on the CPU, most of it the word-embedding table's update; fused it is 11x faster on this machine
    (4.5 vs 49.9 ms per step for the 15.6M-parameter student). Same update rule, to float rounding.
    Devices without a fused kernel get the default implementation.
    """
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except RuntimeError:  # a device or dtype the fused kernel does not cover
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids", "position_ids")}


class _Shifted:
    """A causal LM student's outputs with logits aligned to their targets: position t predicts token t+1."""

    def __init__(self, out):
        self.logits = out.logits[:, :-1]
        self.hidden_states = getattr(out, "hidden_states", None)
        self.attentions = getattr(out, "attentions", None)


def make_step(student_out, teacher_out, batch: dict, regression: bool) -> Step:
    """The method's view of one batch. Token labels `(B, T)` mean a causal LM: the student's logits are
    shifted against the labels and the loss covers exactly the positions whose target is not −100
    (response tokens, or all tokens of plain text; never padding). `teacher_out` (a TeacherOut) comes
    aligned already (kdbench.teacher.outputs)."""
    labels = batch["labels"]
    if labels.dim() == 1:
        soft = (batch["target_ids"], batch["target_weights"]) if "target_ids" in batch else None
        return Step(student_out, teacher_out, labels, batch["attention_mask"], None, regression, soft)
    # A target counts only when the position predicting it is a real token: with left padding the
    # first real token would otherwise be "predicted" from a pad.
    scored = (labels[:, 1:] != -100) & batch["attention_mask"][:, :-1].bool()
    targets = labels[:, 1:].masked_fill(~scored, -100)
    rollout = {k[len("rollout_"):]: v[:, 1:] if v.dim() == 2 else v for k, v in batch.items() if k.startswith("rollout_")}
    return Step(_Shifted(student_out), teacher_out, targets, batch["attention_mask"], scored, regression,
                rollout=rollout or None)


def output_flags(needs: frozenset) -> dict:
    return {"output_hidden_states": "hidden_states" in needs, "output_attentions": "attentions" in needs}


def _non_finite(what: str, step: int, batch_index: int, value, parts: dict, policy: str) -> str:
    """Stop with a readable NumericalError, or (policy "skip") return what was not finite."""
    from kdbench.errors import NumericalError

    shown = ", ".join(f"{k}={v:.4g}" for k, v in parts.items()) or "none reported"
    value = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    message = f"non-finite {what} ({value}) at step {step}, batch {batch_index}; loss components: {shown}"
    if policy == "skip":
        return message
    raise NumericalError(f"{message}. The run stops; lower train.lr, check the data, or pass nan_policy=skip"
                         " to skip such steps (they are counted in the record)")


def _tty() -> bool:
    import sys

    return sys.stderr.isatty()


def _forever(loader: DataLoader) -> Iterator[dict]:
    while True:
        yield from loader


@dataclass
class TrainState:
    """What the loop carries from step to step besides the weights and the optimizer: the counters and
    curves (`stats`), the data position and the loss window of the current log interval. A checkpoint
    saves it with the weights, the optimizer, the schedule and the RNG states; a resume restores it."""

    stats: TrainStats = field(default_factory=TrainStats)
    batch_index: int = 0  # micro-batches drawn so far: a resumed loader is replayed to here
    window: list = field(default_factory=list)  # (loss, parts) of the steps since the last loss-curve point
    best: dict | None = None  # keep="best": {"point": curve point, "model": its weights on the CPU}
    policy: object = None  # an on-policy method's kdbench.rollouts.DataPolicy, whose state travels with the rest
    tag: str = ""  # the trackers' prefix for this training: "kd/sst2", "teacher/sst2" (kdbench.trackers)

    def saved(self, elapsed: float) -> dict:
        s = self.stats
        return {"step": s.steps, "batch_index": self.batch_index,
                "stats": {"examples": s.examples, "tokens": s.tokens, "seconds": elapsed,
                          "teacher_seconds": s.teacher_seconds, "skipped_steps": s.skipped_steps,
                          "loss_curve": s.loss_curve, "curve": s.curve, "val_seconds": s.val_seconds,
                          "on_policy": s.on_policy},
                "window": [[loss, parts] for loss, parts in self.window], "best": self.best or {},
                "policy": self.policy.state_dict() if self.policy is not None else {}}

    def restore(self, saved: dict) -> None:
        s, kept = self.stats, saved["stats"]
        s.examples, s.tokens, s.teacher_seconds = kept["examples"], kept["tokens"], kept["teacher_seconds"]
        s.seconds, s.skipped_steps, s.loss_curve = kept["seconds"], kept["skipped_steps"], kept["loss_curve"]
        s.curve, s.val_seconds = kept.get("curve", []), kept.get("val_seconds", 0.0)
        s.on_policy = kept.get("on_policy", {})
        if self.policy is not None:
            self.policy.load_state_dict(saved.get("policy", {}))
        self.best = saved.get("best") or None
        s.steps = s.resumed_from = saved["step"]
        self.batch_index = saved["batch_index"]
        self.window[:] = [(loss, parts) for loss, parts in saved["window"]]


@dataclass
class _Prepared:
    """The objects accelerate prepared for this training, and where they are checkpointed."""

    model: torch.nn.Module
    extra: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    schedule: object
    accelerator: object
    checkpoint: Checkpointer | None

    def save(self, state: TrainState, elapsed: float) -> None:
        """Every process calls this at the same step: each one's RNG states are gathered, the main one writes."""
        rngs = [rng_state()]
        if self.accelerator.num_processes > 1:  # dropout draws differ per process: a resume restores each one's
            from accelerate.utils import gather_object

            rngs = gather_object(rngs)
        if not self.accelerator.is_main_process:
            return
        unwrap = self.accelerator.unwrap_model
        self.checkpoint.save({
            **state.saved(elapsed), "model": unwrap(self.model).state_dict(),
            "extra": unwrap(self.extra).state_dict() if self.extra is not None else {},
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "rng": rngs[0], "rngs": rngs,
        })

    def restore(self, saved: dict, state: TrainState, batches) -> None:
        """Load a checkpoint into the prepared objects and replay the data position.

        The loader is fresh (same seed), so drawing the batches already used brings its order to where the
        checkpoint left it; the RNGs are restored last, after anything that might draw from them.
        """
        self.accelerator.unwrap_model(self.model).load_state_dict(saved["model"])
        if self.extra is not None:
            self.accelerator.unwrap_model(self.extra).load_state_dict(saved["extra"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["schedule"])
        rngs = saved.get("rngs") or [saved["rng"]]
        if len(rngs) != self.accelerator.num_processes:
            from kdbench.errors import KdbenchError

            raise KdbenchError(f"the checkpoint in {self.checkpoint.folder} was written by {len(rngs)} process(es) and"
                               f" this run has {self.accelerator.num_processes}; resume with the same number of"
                               " processes, or pass resume=false to train anew")
        state.restore(saved)
        for _ in range(state.batch_index):
            next(batches)
        set_rng_state(rngs[self.accelerator.process_index])


def train(
    model: torch.nn.Module,
    distiller: Distiller,
    loader: DataLoader,
    cfg: TrainConfig,
    accelerator,
    *,
    regression: bool = False,
    desc: str = "train",
    nan_policy: str = "stop",
    checkpoint: Checkpointer | None = None,
    log=None,
    validate: Callable[[torch.nn.Module], tuple[float, dict]] | None = None,
    eval_every: int = 0,
    rollouts=None,
) -> TrainStats:
    """Train `model` (and the method's own modules, `distiller.state`) for cfg.max_steps steps.

    Each micro-batch: the teacher's outputs from `distiller.teacher` (kdbench.teacher.source: the live
    model or the output cache; none when the method needs none), the student's forward with the outputs
    the method needs, `distiller.loss(step)`, backward. An on-policy method (`distiller.policy`) may have
    the micro-batch replaced first by responses `rollouts` samples from the student or the teacher
    (kdbench.rollouts); the teacher's outputs on such a batch run live.

    A non-finite loss or gradient norm stops the run with a NumericalError naming the step, the batch
    and the loss components (nan_policy="stop"), or skips that optimizer step and counts it ("skip");
    the last checkpoint written before it is kept.

    With a `checkpoint`, training resumes from its saved state if there is one, saves every
    `checkpoint.every` steps and after the last step, and on SIGTERM/SIGINT saves after the current step
    and raises `stop_signals.Interrupted`.

    With `validate(model)` → (validation loss, {metric: value}), the model is scored before the first step,
    every `eval_every` steps (kdbench.convergence.auto_eval_every) and after the last step, in eval mode
    and without gradients; the points form `stats.curve`. Scoring draws no random numbers, so the curve
    does not change the training. Its time is kept apart (`stats.val_seconds`).
    """
    with stop_signals.deferred():
        return _train(model, distiller, loader, cfg, accelerator, regression=regression, desc=desc,
                      nan_policy=nan_policy, checkpoint=checkpoint, log=log, validate=validate, eval_every=eval_every,
                      rollouts=rollouts)


def _validation_point(model, validate, step: int, state: TrainState, accelerator, keep: str) -> None:
    """Score the model on the validation slice and append the point to the curve; keep="best" copies the
    weights of a point that beats the best so far."""
    stats = state.stats
    t0 = time.perf_counter()
    inner = accelerator.unwrap_model(model)
    was_training = inner.training
    inner.eval()
    saved = rng_state()  # scoring must not move the training's random streams (DataLoader iterators draw a seed)
    with torch.no_grad(), record_function("kdbench/validation"):
        loss, scores = validate(inner)
    set_rng_state(saved)
    inner.train(was_training)
    point = [step, round(float(loss), 6), {k: round(float(v), 4) for k, v in scores.items()}]
    stats.curve.append(point)
    trackers.log(accelerator, {f"{state.tag}/val_loss": point[1],
                               **{f"{state.tag}/val_{k}": v for k, v in point[2].items()}}, step)
    if state.policy is not None:
        state.policy.observe_validation(step, float(loss))
    if keep == "best" and better_point(point, state.best["point"] if state.best else None):
        state.best = {"point": point, "model": {k: v.detach().to("cpu", copy=True) for k, v in inner.state_dict().items()}}
    stats.val_seconds += time.perf_counter() - t0


def _train(model, distiller, loader, cfg, accelerator, *, regression, desc, nan_policy, checkpoint, log,
           validate=None, eval_every=0, rollouts=None) -> TrainStats:
    if cfg.keep == "best" and validate is None:
        from kdbench.errors import KdbenchError

        raise KdbenchError("train.keep=best picks the weights of the validation curve's best point, and this training"
                           " has no validation curve; use train.keep=last")

    if cfg.batch_size % accelerator.num_processes:
        from kdbench.errors import KdbenchError

        raise KdbenchError(f"batch_size {cfg.batch_size} does not split over {accelerator.num_processes} processes;"
                           f" choose a multiple of {accelerator.num_processes}")
    needs, extra = distiller.needs, distiller.state
    # frozen parameters (a teacher fine-tuned in its top layers only) get no optimizer state
    params = [p for p in model.parameters() if p.requires_grad] + (list(extra.parameters()) if extra is not None else [])
    optimizer = make_optimizer(params, cfg.lr, cfg.weight_decay)
    schedule = make_schedule(optimizer, cfg)
    model, optimizer, loader, schedule = accelerator.prepare(model, optimizer, loader, schedule)
    if extra is not None and any(p.requires_grad for p in extra.parameters()):
        extra = accelerator.prepare(extra)  # DDP refuses a module without trainable parameters (fakd, equal widths)
    prepared = _Prepared(model, extra, optimizer, schedule, accelerator, checkpoint)
    model.train()
    state = TrainState(policy=distiller.policy, tag=desc.replace(" ", "/"))
    if distiller.policy is not None and rollouts is None:
        from kdbench.errors import KdbenchError

        raise KdbenchError(f"{desc}: the method trains on sampled responses and this training has no sampler")
    stats, window = state.stats, state.window
    batches = _forever(loader)
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        prepared.restore(saved, state, batches)
        if log:
            log(f"resuming {desc} from the checkpoint at step {saved['step']} in {checkpoint.folder}")
        del saved
    every = auto_eval_every(cfg.max_steps, eval_every)
    if validate is not None and not stats.curve:
        _validation_point(model, validate, 0, state, accelerator, cfg.keep)
    start = time.perf_counter() - stats.seconds  # a resumed run counts the time of the steps it kept
    # On a terminal the bar redraws live; in a log file it prints a line every 30 s.
    bar = tqdm(total=cfg.max_steps, initial=stats.steps, desc=desc, unit="step", leave=False,
               mininterval=0.5 if _tty() else 30)
    for step in range(stats.steps + 1, cfg.max_steps + 1):
        # grad_accum micro-batches per optimizer step, each weighted 1/grad_accum (as HF Trainer does)
        step_loss, step_parts, bad = 0.0, {}, None
        for _ in range(cfg.grad_accum):
            with record_function("kdbench/data"):
                batch = next(batches)
            state.batch_index += 1
            sampled = False
            if distiller.policy is not None:  # on-policy: this micro-batch may be sampled (kdbench.rollouts)
                with record_function("kdbench/rollout"):
                    batch, sampled = on_policy_batch(distiller.policy, rollouts, batch, accelerator.unwrap_model(model),
                                                     step, cfg.max_steps, state.batch_index, stats.on_policy)
                    if sampled:  # a built batch is collated on the CPU; the prepared loader's are on the device
                        batch = send_to_device(batch, accelerator.device)
            teacher_out = None
            if distiller.teacher is not None:
                t0 = time.perf_counter()
                teacher_out = (distiller.teacher.fresh if sampled else distiller.teacher.outputs)(batch)
                stats.teacher_seconds += time.perf_counter() - t0
            with accelerator.autocast():
                with record_function("kdbench/student_forward"):
                    student_out = model(**model_inputs(batch), **output_flags(needs))
                with record_function("kdbench/loss"):
                    loss, parts = distiller.loss(make_step(student_out, teacher_out, batch, regression))
            if not torch.isfinite(loss.detach()):
                bad = _non_finite("loss", step, state.batch_index, loss, parts, nan_policy)
                continue
            with record_function("kdbench/backward"):
                accelerator.backward(loss / cfg.grad_accum)
            step_loss += float(loss.detach()) / cfg.grad_accum
            for k, v in parts.items():
                step_parts[k] = step_parts.get(k, 0.0) + v / cfg.grad_accum
            stats.examples += batch["labels"].shape[0]
            stats.tokens += int(batch["attention_mask"].sum())
        if bad is None:
            # the total norm (clip at inf = measure only) is the cheap check that every gradient is finite
            with record_function("kdbench/clip_grad_norm"):
                norm = accelerator.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            if norm is not None and not math.isfinite(float(norm)):
                bad = _non_finite("gradient norm", step, state.batch_index, norm, step_parts, nan_policy)
        if bad is not None:  # nan_policy=skip: no update from this step
            optimizer.zero_grad(set_to_none=True)
            stats.skipped_steps.append([step, bad])
            stats.steps = step
            bar.update(1)
            _checkpoint_if_due(prepared, state, cfg.max_steps, start)
            continue
        with record_function("kdbench/optimizer"):
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        stats.steps = step
        if accelerator.num_processes > 1:  # each process saw its slice: log the loss of the whole batch
            names = sorted(step_parts)
            mean = accelerator.reduce(torch.tensor([step_loss] + [step_parts[k] for k in names],
                                                   device=accelerator.device), "mean").tolist()
            step_loss, step_parts = mean[0], dict(zip(names, mean[1:]))
        window.append((step_loss, step_parts))
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            mean_loss = sum(w[0] for w in window) / len(window)
            mean_parts = {k: sum(w[1].get(k, 0.0) for w in window) / len(window) for k in window[0][1]}
            stats.loss_curve.append([step, round(mean_loss, 6), {k: round(v, 6) for k, v in mean_parts.items()}])
            window.clear()
            tag = state.tag
            trackers.log(accelerator, {f"{tag}/loss": mean_loss, **{f"{tag}/{k}": v for k, v in mean_parts.items()},
                                       f"{tag}/lr": schedule.get_last_lr()[0],
                                       f"{tag}/examples_per_s": stats.examples / max(time.perf_counter() - start,
                                                                                     1e-9)}, step)
        if validate is not None and (step % every == 0 or step == cfg.max_steps):
            t0 = time.perf_counter()
            _validation_point(model, validate, step, state, accelerator, cfg.keep)
            start += time.perf_counter() - t0  # validation time is not training time
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{step_loss:.4f}", ex_s=f"{stats.examples / elapsed:.1f}", refresh=False)
        bar.update(1)
        _checkpoint_if_due(prepared, state, cfg.max_steps, start)
    bar.close()
    stats.seconds = time.perf_counter() - start
    if distiller.policy is not None:
        stats.on_policy["policy"] = distiller.policy.summary()
    if cfg.keep == "best" and state.best is not None:
        stats.kept_step = state.best["point"][0]
        if stats.kept_step != stats.steps:
            accelerator.unwrap_model(model).load_state_dict(state.best["model"])
            if log:
                log(f"{desc}: keeping the weights of step {stats.kept_step}, the validation curve's best point")
    if accelerator.num_processes > 1:  # each process counted its own slice of every batch
        totals = accelerator.reduce(torch.tensor([stats.examples, stats.tokens], device=accelerator.device), "sum")
        stats.examples, stats.tokens = (int(v) for v in totals.tolist())
    accelerator.free_memory()  # drop accelerate's references; the next task prepares new objects
    return stats


def _checkpoint_if_due(prepared: _Prepared, state: TrainState, last: int, start: float) -> None:
    """After a step: save when due or when a stop signal arrived; then honour that signal."""
    signum = _stop_requested(prepared.accelerator)
    checkpoint, step = prepared.checkpoint, state.stats.steps
    if checkpoint is not None and (signum is not None or checkpoint.due(step, last)):
        with record_function("kdbench/checkpoint"):
            prepared.save(state, time.perf_counter() - start)
    if signum is not None:
        where = f"after step {step}" + (f"; checkpoint saved in {checkpoint.folder}, re-run the same command to"
                                        " resume" if checkpoint is not None else "")
        raise stop_signals.interrupted(where, signum)


def _stop_requested(accelerator) -> int | None:
    """The stop signal that any process has received. Under DDP a signal reaches the processes at different
    moments; all of them must stop after the same step, so that each saves its RNG states into one
    checkpoint and no process waits in a collective its peers have left."""
    signum = stop_signals.pending()
    if accelerator.num_processes == 1:
        return signum
    flag = torch.tensor([signum or 0], device=accelerator.device)
    return int(accelerator.reduce(flag, "max").item()) or None
