"""One `kdbench run`: for each task, data → teacher → student → train → score → record.

    kdbench run suite=glue method=rlkd data_dir=../shared/data

The record is rewritten atomically after every task, so a failure in a later
task keeps the earlier tasks' results (`status: "partial"`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import tempfile
import time
from pathlib import Path

import torch

from kdbench.cache_entries import GB, prune
from kdbench.checkpoint import Checkpointer
from kdbench.convergence import curve_entry
from kdbench.distiller import Distiller
from kdbench.config import RunConfig, SuiteInfo, suite_names
from kdbench.errors import KdbenchError
from kdbench.locks import file_lock
from kdbench.methods.base import Method
from kdbench.models.load import (cache_root, count_params, derived_layers, head_labels, load_config, load_tokenizer,
                                 model_identity, student_from_teacher)
from kdbench.plugins import provenance
from kdbench.registry import METHODS, SUITE_KINDS
from kdbench.results import (SCHEMA_VERSION, config_hash, examples_file, git_commit, reserve_record_path, versions,
                             write_examples, write_record)
from kdbench.runner import make_accelerator, train
from kdbench.stale import mark_stale, writer
from kdbench.models.placement import to_device
from kdbench.rollouts import Rollouts
from kdbench import trackers
from kdbench.saved_student import (check_hub, check_space, check_writable, push_student, save_student,
                                   students_folder)
from kdbench.teacher.responses import open_responses
from kdbench.teacher.source import CachedTeacher, open_source, output_size
from kdbench.teacher.weights import format_scores, teacher_for_task
from kdbench.validation import validator


def suite_of(cfg: RunConfig):
    import kdbench.suites  # noqa: F401  (registers the suites)

    info = cfg.suite_info or SuiteInfo.load(cfg.suite)  # a RunConfig built by hand carries none
    suite = SUITE_KINDS.get(info.kind)(info)
    suite.configure(cfg)  # the kind's own options, checked before any model loads
    return suite, info


def tasks_of(cfg: RunConfig, suite, info: SuiteInfo) -> list[str]:
    tasks = list(cfg.tasks) or list(info.tasks)
    if not tasks:
        raise KdbenchError(f"suite {cfg.suite!r} names no default tasks; pass tasks=[...]")
    suite.check_tasks(tasks)
    return tasks


def data_root_of(cfg: RunConfig) -> Path | None:
    if not cfg.data_dir:
        return None
    root = Path(cfg.data_dir).expanduser()
    if not root.is_dir():
        raise KdbenchError(f"data root {root} does not exist; pass data_dir= (or set KDBENCH_DATA_DIR) to a folder with glue/<Task>/*.tsv")
    return root


def suites_that_sample() -> list[str]:
    """The suites (their `_tiny` variants left out) whose kind has responses an on-policy method can sample."""
    return [name for name in suite_names() if not name.endswith("_tiny")
            and SUITE_KINDS.get(SuiteInfo.load(name).kind).samples_responses]


def validate(cfg: RunConfig) -> list[str]:
    """Everything that can be checked without loading a model; returns the task list."""
    suite, info = suite_of(cfg)
    tasks = tasks_of(cfg, suite, info)
    data_root_of(cfg)
    if not cfg.teacher or not cfg.student:
        raise KdbenchError(f"suite {cfg.suite!r} sets no default teacher/student; pass teacher= and student=")
    method = METHODS.get(cfg.method)
    if method.data_policy is not None and not suite.samples_responses:
        raise KdbenchError(f"method {cfg.method!r} trains on responses it samples, and suite {cfg.suite!r} classifies:"
                           f" it has no responses to sample; use a text or generation suite ({', '.join(suites_that_sample())})")
    if method.cross_tokenizer and not suite.paired_examples:
        raise KdbenchError(f"method {cfg.method!r} pairs each training example as the teacher's and the student's"
                           f" tokenizers read it, and suite {cfg.suite!r} cuts its text into blocks per tokenizer;"
                           " use a generation suite (rouge, bleu, cer)")
    suite.check_tokenizer(lambda: load_tokenizer(cfg.teacher, cfg.cache_dir or None), tasks)
    if cfg.student_init == "teacher":
        layers_of, _ = derived_layers(cfg.student)
        if layers_of != cfg.teacher:
            raise KdbenchError(f"student_init=teacher: student {cfg.student!r} keeps layers of {layers_of!r}, but the"
                               f" teacher is {cfg.teacher!r}; pass teacher={layers_of} or student_init=pretrained")
    return tasks


def _student_tokenizer(cfg: RunConfig, method: Method):
    """The student's own tokenizer where it may read the data differently from the teacher: a cross-tokenizer
    method, or a method that reads nothing of the teacher (`none`) beside a teacher of another vocabulary (the
    baseline of a cross-tokenizer comparison). None: the student reads the teacher's tokenisation."""
    cache = cfg.cache_dir or None
    if method.cross_tokenizer or (not method.reads_teacher(cfg.method_params)
                                  and load_config(cfg.teacher, cache).vocab_size != load_config(cfg.student, cache).vocab_size):
        return load_tokenizer(cfg.student, cache)
    return None


def preflight(cfg: RunConfig, method: Method, task) -> dict:
    """Refuse an incompatible teacher/student pair from their configs, before any weights load.

    `task` is the suite's task data (.name, .num_labels; 0 labels for language modelling). Returns what
    the method's own check says of this task (e.g. rlkd's effective k), for the record.
    """
    t_cfg, s_cfg = load_config(cfg.teacher, cfg.cache_dir or None), load_config(cfg.student, cfg.cache_dir or None)
    if t_cfg.vocab_size != s_cfg.vocab_size and method.reads_teacher(cfg.method_params) and not method.cross_tokenizer:
        raise KdbenchError(
            f"teacher {cfg.teacher!r} has a vocabulary of {t_cfg.vocab_size} tokens, student {cfg.student!r} has"
            f" {s_cfg.vocab_size}; method {cfg.method!r} feeds one tokenised batch to both, so they must share the"
            " tokenizer; method=uld distils across tokenizers (and method=none, which reads no teacher, takes any)"
        )
    for role, name, conf in (("teacher", cfg.teacher, t_cfg), ("student", cfg.student, s_cfg)):
        labels = head_labels(conf)
        if labels is not None and task.num_labels and labels != task.num_labels:
            raise KdbenchError(
                f"{role} {name!r} has a {labels}-label head but {task.name} has {task.num_labels};"
                f" method {method.name!r} compares teacher and student outputs label by label"
            )
        limit = getattr(conf, "max_position_embeddings", None)
        if limit is not None and limit < cfg.train.max_length:
            raise KdbenchError(f"{role} {name!r} takes at most {limit} positions; set train.max_length<={limit}")
    if method.check_outputs is None:
        return {}
    size = output_size(task, t_cfg)
    return method.check_outputs(cfg.method_params, size, task.name, size == t_cfg.vocab_size and not head_labels(t_cfg))


def checkpointer(cfg: RunConfig, data, record_path: Path) -> Checkpointer:
    """The checkpoint folder of this config's training on this task's data (see kdbench.checkpoint)."""
    key = config_hash({**cfg.to_dict(), "task": data.name, "training": list(_training_key(data))})[:16]
    cache_dir = cache_root(cfg)
    return Checkpointer(cache_dir / "checkpoints" / f"{cfg.suite}-{cfg.method}-{data.name}-{key}",
                        cfg.checkpoint_every, cfg.resume, str(record_path))


def _mark_superseded(checkpoint: Checkpointer, run_id: str, log) -> None:
    """The run that left this checkpoint died without finishing its record (SIGKILL, power loss): say so in it."""
    previous = checkpoint.previous()
    if previous is None:
        return
    path = Path(previous.get("record", ""))
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if old.get("status") == "running":
        old.update(status="interrupted", error=f"the process died after checkpoint step {previous['step']};"
                                               f" resumed by run {run_id}")
        write_record(path, old)
        log(f"{path.name}: marked interrupted (resumed by this run)")


def _train_student(cfg, method, suite, data, tokenizer, teacher, accelerator, log, checkpoint=None,
                   teacher_tokenizer=None, before_training=None):
    """Build the student (and the method's extra modules) and train it; returns (student, stats).
    `tokenizer` is the student's; `teacher_tokenizer` the teacher's, read by a cross-tokenizer method;
    `before_training(student)` runs once the student is built (the disk-space check of a saved student)."""
    params = cfg.method_params
    needs = method.needs(params)
    attention_maps = "attentions" in needs
    attn_before = teacher.config._attn_implementation
    if attention_maps:
        teacher.set_attn_implementation("eager")  # SDPA returns no attention maps
    torch.manual_seed(cfg.seed)
    student = suite.build_model(cfg.student, data, cfg.seed, cfg.cache_dir or None, attention_maps=attention_maps)
    if cfg.student_init == "teacher":
        student_from_teacher(student, teacher, derived_layers(cfg.student)[1])
    if cfg.train.freeze_embeddings:  # a CPU lever: the 49,152 x 576 table's gradient and AdamW update cost
        for name, p in student.named_parameters():  # more than six transformer layers do
            if "embed" in name:
                p.requires_grad_(False)
    if before_training is not None:
        before_training(student)
    state = method.build_state(params, student.config, teacher.config) if method.build_state else None
    loader = suite.train_loader(tokenizer, data, cfg.train.max_length, cfg.train.batch_size, cfg.seed,
                                cfg.data.padding_side)
    paired = None
    if method.cross_tokenizer:  # the teacher reads each training example through its own tokenizer
        teacher_tokenizer = teacher_tokenizer or tokenizer
        by_bytes = getattr(params, "align", "index") == "bytes"  # pair the tokens by text, not by index
        paired = (suite.paired_features(teacher_tokenizer, tokenizer, data, cfg.train.max_length, by_bytes),
                  teacher_tokenizer.pad_token_id)
    source, outputs_meta = open_source(cfg, method, params, data, tokenizer, teacher, student, loader, accelerator, log,
                                       paired)
    policy, rollouts = None, None
    if method.data_policy is not None:  # on-policy: the runner samples responses for it (kdbench.rollouts)
        policy = method.data_policy(params, cfg.seed)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        rollouts = Rollouts(pad, tokenizer.eos_token_id, cfg.data.padding_side, cfg.train.max_length, cfg.seed,
                            to_device(teacher, accelerator.device), getattr(loader.dataset, "features", None),
                            cfg.train.batch_size)
        if policy.wants_responses:  # SeqKD: the teacher's responses, cached per training example
            policy.responses = open_responses(cfg, data, tokenizer, policy)
    log(f"[{data.name}] training student {cfg.student} with {cfg.method} for {cfg.train.max_steps} steps")
    stats = train(student, Distiller(method, params, state, source, policy), loader, cfg.train, accelerator,
                  regression=data.regression, desc=f"{cfg.method} {data.name}", nan_policy=cfg.nan_policy,
                  checkpoint=checkpoint, log=log, validate=validator(suite, tokenizer, data, cfg, accelerator.device),
                  eval_every=cfg.eval_every, rollouts=rollouts)
    if isinstance(source, CachedTeacher):
        outputs_meta.update(source.close())
        log(f"[{data.name}] teacher outputs: {outputs_meta['rows_read']} examples read from the cache,"
            f" {outputs_meta['rows_filled']} computed and stored ({outputs_meta['fill_s']:.1f} s)")
    stats.teacher_outputs = outputs_meta
    if policy is not None and policy.responses is not None:
        stats.on_policy["teacher_responses"] = meta = policy.responses.close()
        log(f"[{data.name}] teacher responses: {meta['rows_read']} read from the cache, {meta['rows_filled']}"
            f" generated and stored")
    if attention_maps and attn_before:
        teacher.set_attn_implementation(attn_before)  # a teacher reused by later sweep cells keeps its fast path
    return accelerator.unwrap_model(student), stats


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over the student's parameters and buffers (names, dtypes, shapes, bytes): a fingerprint that
    shows two runs ended with bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _training_key(data) -> tuple:
    """What the student's training depends on beyond the config: the training data and the head."""
    return (data.train.sha256, len(data.train.examples), data.num_labels, getattr(data, "max_blocks", None))


def _new_record(cfg: RunConfig, info: SuiteInfo, accelerator) -> dict:
    """A record with status "running" and everything known before the first task."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": None,  # set when the record's file is reserved, just before the first task
        "status": "running",
        "writer": writer(),  # so that a later run can tell a killed run's record from a live one (kdbench.stale)
        "plugins": provenance(),  # the plug-in files (and installed plug-ins) imported, with their sha256
        "suite": cfg.suite,
        "suite_version": info.version,
        # a suite whose students cannot plateau on 2 CPU cores says so, and what budget they would need
        "budget_bound": info.budget_bound,
        "method": cfg.method,
        "method_params": dataclasses.asdict(cfg.method_params),
        "teacher": model_identity(cfg.teacher, cfg.cache_dir or None),
        "student": {**model_identity(cfg.student, cfg.cache_dir or None),
                    **({"init": "the fine-tuned teacher's layers and head (teacher_cache[task] names its weights)"}
                       if cfg.student_init == "teacher" else {})},
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "metrics": {},
        "teacher_metrics": {},
        "params": {},
        "timings": {"teacher_s": 0.0, "train_s": 0.0, "eval_s": 0.0, "teacher_forward_s": 0.0},
        "throughput": {},
        "loss_curves": {},
        "data": {},
        "versions": versions(),
        "git_commit": git_commit(),
        "device": {"type": str(accelerator.device), "mixed_precision": accelerator.mixed_precision,
                   "torch_threads": torch.get_num_threads(), "processes": accelerator.num_processes},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@dataclasses.dataclass
class _Run:
    """What the tasks of one run share: its settings, the record being filled, and what is held open."""

    cfg: RunConfig
    suite: object
    method: Method
    accelerator: object
    tokenizer: object  # the teacher's (and the student's, unless the method distils across tokenizers)
    data_root: Path | None
    teachers: dict
    log: object
    record: dict
    path: Path
    held: contextlib.ExitStack  # the checkpoint folders' locks, released when the run ends
    examples: dict = dataclasses.field(default_factory=dict)
    checkpoints: list = dataclasses.field(default_factory=list)  # cleared once the record is complete
    trained: tuple | None = None  # (training key, student, stats, task) of the last student trained
    student_tokenizer: object = None  # a cross-tokenizer method's student reads the data through its own
    saved: dict = dataclasses.field(default_factory=dict)  # id(student) -> the folder it was saved in
    tasks_left: int = 1  # students still to train, for the disk-space check of saving them
    task_count: int = 1  # the run's tasks: with several, each pushed student goes to its own subfolder

    @property
    def reader(self):
        """The tokenizer the student reads the data with."""
        return self.student_tokenizer or self.tokenizer


def _run_task(run: _Run, task_name: str, last: bool) -> None:
    """Train (or reuse) the student for one task, score it and its teacher, and write the record."""
    cfg, suite, record, log = run.cfg, run.suite, run.record, run.log
    data = suite.load(task_name, run.data_root, cfg.data.max_train_examples, cfg.data.max_eval_examples)
    suite.hold_out(data, cfg.data.val_examples)
    record.setdefault("method_checks", {})[task_name] = preflight(cfg, run.method, data)
    record["data"][task_name] = {"train": data.train.source, "train_rows": len(data.train.examples),
                                 "validation": suite.val_description(data),
                                 **{f"eval_{k}": v.source for k, v in data.evals.items()},
                                 **{f"eval_{k}_rows": len(v.examples) for k, v in data.evals.items()},
                                 "tokenizer": run.tokenizer.name_or_path, "notes": suite.notes(run.reader, data, cfg),
                                 **({"student_tokenizer": run.reader.name_or_path} if run.student_tokenizer else {})}

    # Every run scores the teacher too (the leaderboard's ceiling row); it is cached per task.
    teacher, meta = teacher_for_task(cfg, suite, data, run.tokenizer, run.accelerator, log, run.teachers)
    record["teacher_metrics"][task_name] = meta["metrics"]
    record["timings"]["teacher_s"] += meta["seconds"]
    record.setdefault("teacher_cache", {})[task_name] = {"cached": meta["cached"], "key": meta["key_parts"],
                                                         "weights_sha256": meta.get("weights_sha256")}
    if meta.get("curve"):
        record.setdefault("teacher_curves", {})[task_name] = meta["curve"]
    record.setdefault("trivial", {})[task_name] = suite.trivial(run.reader, data, cfg)
    student, stats = _student_for(run, task_name, data, teacher)
    record.setdefault("curves", {})[task_name] = curve_entry(stats.curve, stats.kept_step)
    record["converged"] = all(c["converged"] for c in record["curves"].values())
    record["learned"] = all(c["learned"] is not False for c in record["curves"].values())

    record["params"] = {"teacher": count_params(teacher), "student": count_params(student)}
    record["loss_curves"][task_name] = stats.loss_curve
    if stats.skipped_steps:  # nan_policy=skip
        record.setdefault("skipped_steps", {})[task_name] = stats.skipped_steps

    device = run.accelerator.device
    start = time.perf_counter()
    scores, predictions = suite.evaluate(student, run.reader, data, cfg, device)
    record["timings"]["eval_s"] += time.perf_counter() - start
    record["metrics"][task_name] = scores
    trackers.log(run.accelerator, {f"{cfg.method}/{task_name}/final/{k}": v for k, v in scores.items()
                                   if isinstance(v, (int, float))}, max(stats.steps, 1))
    start = time.perf_counter()
    # the diagnostics compare the two models' distributions token by token: one vocabulary only
    same_vocabulary = len(run.reader) == len(run.tokenizer)
    record.setdefault("diagnostics", {})[task_name] = suite.diagnostics(student, teacher, run.tokenizer, data, cfg,
                                                                        device) if same_vocabulary else {}
    record["timings"]["diagnostics_s"] = record["timings"].get("diagnostics_s", 0.0) + time.perf_counter() - start
    examples = suite.examples(data, predictions)  # per-example outputs, for paired statistics on the leaderboard
    if examples is not None:
        run.examples[task_name] = examples
        examples_path = examples_file(run.path)
        write_examples(examples_path, run.examples)
        record["examples_file"] = str(examples_path.relative_to(run.path.parent))
    record["student_sha256"] = {**record.get("student_sha256", {}), task_name: weights_sha256(student)}
    if cfg.save_student and run.accelerator.is_main_process:
        _keep_student(run, task_name, student, data)
    record["status"] = "complete" if last else "partial"
    write_record(run.path, record)
    log(f"[{task_name}] {cfg.method}: {format_scores(scores)} (teacher {format_scores(meta['metrics'])})")


def _keep_student(run: _Run, task_name: str, student, data) -> None:
    """Save the task's student (once, when tasks share it) and name its folder in the record."""
    folder = run.saved.get(id(student))
    if folder is None:
        folder = students_folder(run.cfg, run.record["run_id"]) / task_name
        save_student(student, run.reader, folder, run.record, task_name, data)
        run.saved[id(student)] = folder
        run.log(f"[{task_name}] student saved in {folder}")
        if run.cfg.push_to_hub:
            url = push_student(run.cfg.push_to_hub, folder, task_name, run.task_count > 1)
            run.record.setdefault("pushed", {})[task_name] = url
            run.log(f"[{task_name}] student pushed to {url}")
    run.record.setdefault("students", {})[task_name] = str(folder)


def _student_for(run: _Run, task_name: str, data, teacher):
    """The trained student for this task: trained now, or the previous task's when the training data is the
    same (the lm-eval tasks all distil on one corpus). Returns (student, stats)."""
    record, log = run.record, run.log
    if run.trained is not None and run.trained[0] == _training_key(data):
        student, stats = run.trained[1], run.trained[2]
        log(f"[{task_name}] same training data as [{run.trained[3]}]: scoring that student")
        record["throughput"][task_name] = {**record["throughput"][run.trained[3]], "shared_with": run.trained[3]}
        return student, stats
    checkpoint = checkpointer(run.cfg, data, run.path)
    run.checkpoints.append(checkpoint)
    # One process owns a checkpoint folder until its run ends (the kernel frees a dead holder's lock): an
    # identical run started beside it waits, then trains anew from a cleared folder.
    if run.accelerator.is_main_process:  # the main process alone writes checkpoints
        run.held.enter_context(file_lock(checkpoint.folder.with_name(f".{checkpoint.folder.name}.lock"), log))
        _mark_superseded(checkpoint, record["run_id"], log)
    space = None
    if run.cfg.save_student and run.accelerator.is_main_process:
        folder = students_folder(run.cfg, record["run_id"])
        space = lambda student: check_space(folder.parent, student, run.tasks_left)  # noqa: E731
    student, stats = _train_student(run.cfg, run.method, run.suite, data, run.reader, teacher, run.accelerator,
                                    log, checkpoint, teacher_tokenizer=run.tokenizer, before_training=space)
    record.setdefault("teacher_outputs", {})[task_name] = stats.teacher_outputs
    if stats.resumed_from:
        record.setdefault("resumed_from_step", {})[task_name] = stats.resumed_from
    run.trained = (_training_key(data), student, stats, task_name)
    record["timings"]["train_s"] += stats.seconds
    record["timings"]["val_s"] = record["timings"].get("val_s", 0.0) + stats.val_seconds
    record["timings"]["teacher_forward_s"] += stats.teacher_seconds
    if stats.on_policy:  # sampled responses: their count, tokens and time (inside train_s), and the policy's state
        on_policy = {**stats.on_policy, "sampled_tokens_per_step": round(stats.on_policy.get("sampled_tokens", 0)
                                                                         / max(stats.steps, 1), 2)}
        record.setdefault("on_policy", {})[task_name] = on_policy
        record["timings"]["generation_s"] = record["timings"].get("generation_s", 0.0) + on_policy.get("generation_s", 0.0)
    record["throughput"][task_name] = {"train_examples_per_s": round(stats.examples_per_second, 2),
                                       "train_tokens_per_s": round(stats.tokens_per_second, 1), "steps": stats.steps}
    return student, stats


def run(cfg: RunConfig, log=print, teachers: dict | None = None) -> Path | None:
    """Train and score one method on the suite's tasks; returns the record's path (None on the non-main
    processes of a distributed run, which write no record).

    `teachers` maps a teacher-weights key to the loaded (model, meta): a sweep passes one dict to every cell
    so that the teacher is loaded (or fine-tuned) once.
    """
    tasks = validate(cfg)
    suite, info = suite_of(cfg)
    accelerator = make_accelerator(cfg.device, cfg.log_with, trackers.trackers_folder(cfg), cfg.precision)
    record = _new_record(cfg, info, accelerator)
    main = accelerator.is_main_process
    # The other processes of a distributed run compute the same record; theirs go to a scratch folder.
    scratch = None if main else tempfile.TemporaryDirectory(prefix=f"kdbench-rank{accelerator.process_index}-")
    data_root = data_root_of(cfg)
    tokenizer = load_tokenizer(cfg.teacher, cfg.cache_dir or None)
    folder = Path(cfg.results_dir if main else scratch.name) / cfg.suite
    created = [d for d in (folder.parent, folder) if not d.exists()]  # removed again if the run leaves nothing
    record["run_id"], path = reserve_record_path(folder, cfg.method, record["config"])
    if main:
        mark_stale(folder, record["run_id"], log)
        _bound_cache(cfg, log)  # room first for the entries this run may build
    method = METHODS.get(cfg.method)
    state = _Run(cfg, suite, method, accelerator, tokenizer, data_root,
                 {} if teachers is None else teachers, log, record, path, contextlib.ExitStack(),
                 student_tokenizer=_student_tokenizer(cfg, method))
    try:
        if main and cfg.push_to_hub:  # offline or without a token: stop now, not after the training
            check_hub(cfg.push_to_hub, cfg.save_student)
        if main and cfg.save_student:  # an unwritable students folder stops the run before any training
            students = students_folder(cfg, record["run_id"]).parent
            created += [d for d in (students.parent, students) if not d.exists() and d not in created]
            check_writable(students)
        write_record(path, record)  # status "running": readers see a valid record from the start
        trackers.start(accelerator, cfg, record["run_id"], record["config"])
        state.task_count = len(tasks)
        for i, task_name in enumerate(tasks):
            state.tasks_left = len(tasks) - i
            _run_task(state, task_name, last=task_name == tasks[-1])
        accelerator.wait_for_everyone()
        for checkpoint in state.checkpoints if main else []:  # the record holds everything now; a re-run starts anew
            checkpoint.clear()
    except BaseException as e:
        _keep_or_remove(record, path, created, e)
        raise
    finally:
        trackers.finish(accelerator)
        state.held.close()
        if scratch is not None:
            scratch.cleanup()
    if main:
        _bound_cache(cfg, log)  # and again for what it built
    return path if main else None


def _bound_cache(cfg: RunConfig, log) -> None:
    if cfg.cache_max_gb:
        prune(cache_root(cfg), int(cfg.cache_max_gb * GB), log)


def _keep_or_remove(record: dict, path: Path, created: list, error: BaseException) -> None:
    """A run stopped: keep the finished tasks' scores and say why, or leave no file and no folder behind."""
    if record["metrics"]:
        interrupted = isinstance(error, KeyboardInterrupt)
        record["status"] = "interrupted" if interrupted else "failed"
        record["error"] = "interrupted" if interrupted else f"{type(error).__name__}: {error}"
        try:
            write_record(path, record)
        except KdbenchError:
            pass  # the disk refuses even this; the original error is the one to report
        return
    path.unlink(missing_ok=True)
    examples_file(path).unlink(missing_ok=True)
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            pass  # not empty: another run wrote there meanwhile
