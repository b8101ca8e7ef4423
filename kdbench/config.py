"""Typed run configuration: frozen dataclasses, suite TOML, `key=value` overrides.

Precedence, lowest first (each later source overrides the earlier ones):
  1. the defaults in these dataclasses (and in each method's params dataclass);
  2. environment: KDBENCH_DATA_DIR → data_dir, KDBENCH_CACHE_DIR → cache_dir;
  3. the suite file suites/<suite>.toml (its `[method.<name>]` table applies to that method);
  4. command-line overrides, e.g. `train.lr=3e-5 method.k=15`.
Unknown keys, bad types and bad values fail here, before any model loads.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbench.errors import KdbenchError
from kdbench.registry import METHODS, did_you_mean

# Where a user's records, leaderboards and students go by default: `runs/`, which git ignores. The published
# reference records and leaderboards live in the tracked `results/`, written only with results_dir=results.
DEFAULT_RESULTS_DIR = "runs"
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32")
NAN_POLICIES = ("stop", "skip")
STUDENT_INITS = ("pretrained", "teacher")
KEEPS = ("last", "best")
SCHEDULES = ("linear", "constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """One training budget: the student's (`train.*`) or the teacher's fine-tuning (`teacher_train.*`)."""

    max_steps: int = 300  # optimizer steps
    batch_size: int = 32  # examples per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = batch_size x grad_accum)
    lr: float = 1e-4  # peak AdamW learning rate
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # linear warm-up over this share of the steps, then the schedule
    # after the warm-up: linear decay to 0 (default), constant (RLKD's code: cosine over 100k steps, in effect
    # constant), or cosine decay to 0 (DistiLLM, ABKD); transformers' get_<schedule>_schedule_with_warmup
    schedule: str = "linear"
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    max_length: int = 128  # tokens per example after truncation
    log_every: int = 25  # steps between loss-curve points
    freeze_embeddings: bool = False  # student: keep the (pretrained) embeddings and a head tied to them frozen
    # the weights training hands on to scoring: the last step's, or those of the validation curve's best point
    # (kdbench.convergence.better_point; the curve is scored on rows held out of the training data, never dev)
    keep: str = "last"

    def __post_init__(self):
        if self.max_steps < 0:
            raise KdbenchError(f"max_steps must be >= 0, got {self.max_steps}")
        if self.batch_size < 1:
            raise KdbenchError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.grad_accum < 1:
            raise KdbenchError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if not self.lr > 0:
            raise KdbenchError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise KdbenchError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_length < 8:
            raise KdbenchError(f"max_length must be >= 8, got {self.max_length}")
        if self.log_every < 1:
            raise KdbenchError(f"log_every must be >= 1, got {self.log_every}")
        if self.schedule not in SCHEDULES:
            raise KdbenchError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.keep not in KEEPS:
            raise KdbenchError(f"keep must be one of {', '.join(KEEPS)} (the last step's weights, or the validation"
                               f" curve's best point's), got {self.keep!r}")


@dataclass(frozen=True)
class TeacherTrainConfig(TrainConfig):
    """The teacher's fine-tuning budget. Its seed is its own, so every student seed reuses one teacher.

    max_steps=0 uses the teacher as given (e.g. an already fine-tuned local model). top_layers=N freezes the
    embeddings and all but the top N transformer layers: the backward pass stops there, which is what makes a
    135M-parameter teacher affordable on 2 CPU cores.
    """

    def __post_init__(self):
        super().__post_init__()
        if self.top_layers < 0:
            raise KdbenchError(f"top_layers must be >= 0 (0: fine-tune every parameter), got {self.top_layers}")

    seed: int = 0
    top_layers: int = 0  # fine-tune only the top N transformer layers, the final norm and any task head; 0 = all


PADDING_SIDES = ("right", "left")


@dataclass(frozen=True)
class DataConfig:
    max_train_examples: int = 0  # first N training rows (LM suites: blocks); 0 = all
    max_eval_examples: int = 0  # first N rows of each eval split; 0 = all
    val_examples: int = 256  # rows (text suites: blocks) held out of the training data for learning curves
    padding_side: str = "right"  # right | left, for causal-LM batches (classifiers pad right)
    verbalizer: tuple[str, ...] = ()  # causal-LM GLUE: one task's label words in label order; empty = the suite's

    def __post_init__(self):
        if self.max_train_examples < 0 or self.max_eval_examples < 0:
            raise KdbenchError("max_train_examples and max_eval_examples must be >= 0 (0 = all)")
        if self.val_examples < 1:
            raise KdbenchError(f"val_examples must be >= 1 (every run keeps a learning curve on rows held out of"
                               f" the training data), got {self.val_examples}")
        if self.padding_side not in PADDING_SIDES:
            raise KdbenchError(f"padding_side must be right or left, got {self.padding_side!r}")


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 128
    window: int = 512  # perplexity: tokens per sliding window
    stride: int = 256  # perplexity: tokens the window advances (< window)
    max_tokens: int = 0  # perplexity: score only the first N tokens of the eval text; 0 = all
    max_new_tokens: int = 64  # generation suites: tokens generated per prompt
    decoding: str = "greedy"  # greedy (KV cache) | sample (T = 1, top-p = 1, one run per seed)
    seeds: tuple[str, ...] = ("10", "20", "30", "40", "50")  # sampling seeds (MiniLLM/DistiLLM)

    def __post_init__(self):
        if self.decoding not in ("greedy", "sample"):
            raise KdbenchError(f"decoding must be greedy or sample, got {self.decoding!r}")
        if self.max_new_tokens < 1:
            raise KdbenchError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not all(s.lstrip("-").isdigit() for s in self.seeds):
            raise KdbenchError(f"seeds must be integers, got {list(self.seeds)}")
        if self.batch_size < 1:
            raise KdbenchError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.stride < self.window:
            raise KdbenchError(f"stride must be in [1, window - 1] = [1, {self.window - 1}], got {self.stride}")
        if self.max_tokens < 0:
            raise KdbenchError(f"max_tokens must be >= 0 (0 = all), got {self.max_tokens}")


@dataclass(frozen=True)
class SuiteInfo:
    """What a suite file says about itself, beside the run keys it sets: read once, with the config."""

    name: str
    kind: str  # the suite class it names (`kdbench ls suites`)
    version: str = "0"
    description: str = ""
    family: str = ""
    reference: str = ""
    budget_bound: str | None = None
    tasks: tuple = ()
    metric: str = ""  # a generation suite's metric (kdbench.suites.generation.GENERATION_METRICS)
    methods: tuple = ()  # what `kdbench sweep` runs when not given methods=[...] (empty: none, kd, rlkd, fakd)
    teacher: str = ""  # the suite's default pair, which its description names
    student: str = ""

    @classmethod
    def of(cls, name: str, suite_file: dict) -> "SuiteInfo":
        return cls(name, str(suite_file.get("kind", name)), str(suite_file.get("version", "0")),
                   suite_file.get("description", ""), suite_file.get("family", "") or "",
                   suite_file.get("reference", "") or "", suite_file.get("budget_bound"),
                   tuple(suite_file.get("tasks", ())), str(suite_file.get("metric", "")),
                   tuple(suite_file.get("methods", ())), str(suite_file.get("teacher", "")),
                   str(suite_file.get("student", "")))

    @classmethod
    def load(cls, name: str) -> "SuiteInfo":
        return cls.of(name, load_suite_file(name))


@dataclass(frozen=True)
class RunConfig:
    suite: str = "glue"  # suites/<suite>.toml
    method: str = "none"  # kdbench ls methods
    tasks: tuple[str, ...] = ()  # empty: the suite's default tasks
    teacher: str = ""  # model preset, local path or hub id; the suite sets the default
    student: str = ""  # model preset, local path or hub id; the suite sets the default
    seed: int = 0  # student seed: init, data order, dropout
    data_dir: str = ""  # data root; default $KDBENCH_DATA_DIR
    results_dir: str = DEFAULT_RESULTS_DIR  # a user's runs; the published reference records are in results/
    cache_dir: str = ""  # fine-tuned teachers; default $KDBENCH_CACHE_DIR or ~/.cache/kdbench
    cache_max_gb: float = 0.0  # bound on the cache's size on disk: evict least recently used entries; 0 = none
    device: str = "auto"  # auto | cpu | cuda
    # auto: bf16 autocast on a CUDA device that has it, fp32 elsewhere; fp32: fp32 on every device (a GPU then
    # adds seeds to a table trained on CPUs: the record's device.mixed_precision says what a run trained in)
    precision: str = "auto"
    dry_run: bool = False  # print the resolved config and exit
    nan_policy: str = "stop"  # a non-finite loss or gradient: stop the run (stop) or skip that step (skip)
    checkpoint_every: int = 100  # training steps between checkpoints (also after the last step and on SIGTERM/SIGINT)
    eval_every: int = 0  # steps between validation points of the learning curve; 0 = ten per run
    resume: bool = True  # resume an interrupted training from its checkpoint; false: start over
    teacher_cache: bool = True  # reuse the teacher's cached outputs on the training set (kdbench.teacher.cache)
    teacher_cache_k: int = 0  # large-vocabulary causal LMs: 0 = exact (live teacher); k = cache the top-k approximation
    teacher_placement: str = "device"  # device | auto: spread over GPUs, CPU memory, disk (kdbench.models.placement)
    teacher_max_memory: str = ""  # with teacher_placement=auto: "0=30GiB,cpu=100GiB"; empty = what is free
    # pretrained: a derived student (a layer subset) starts from the pretrained model's layers; teacher: from the
    # task's fine-tuned teacher's layers, its task head included (kdbench.models.load.student_from_teacher)
    student_init: str = "pretrained"
    # keep each trained student (kdbench.saved_student): `kdbench run` saves by default, a sweep only when asked
    save_student: bool = True
    students_dir: str = ""  # where saved students go; default <results_dir>/<suite>/students
    log_with: tuple[str, ...] = ()  # experiment trackers (kdbench.trackers): tensorboard, wandb, mlflow, trackio
    push_to_hub: str = ""  # a hub repo id: each saved student is uploaded there (needs the network and a token)
    train: TrainConfig = field(default_factory=TrainConfig)
    teacher_train: TeacherTrainConfig = field(default_factory=TeacherTrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method_params: Any = None  # the method's params dataclass, set from `method.<param>=`
    # the suite file's own fields (kind, version, ...), kept so that nothing parses the TOML again; not a
    # key a user sets, and not part of to_dict (the record states them on its own)
    suite_info: SuiteInfo | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.device not in DEVICES:
            raise KdbenchError(f"unknown device {self.device!r}; {did_you_mean(self.device, list(DEVICES))}")
        if self.precision not in PRECISIONS:
            raise KdbenchError(f"unknown precision {self.precision!r}; {did_you_mean(self.precision, list(PRECISIONS))}")
        if self.nan_policy not in NAN_POLICIES:
            raise KdbenchError(f"unknown nan_policy {self.nan_policy!r}; {did_you_mean(self.nan_policy, list(NAN_POLICIES))}")
        if self.student_init not in STUDENT_INITS:
            raise KdbenchError(f"unknown student_init {self.student_init!r}; {did_you_mean(self.student_init, list(STUDENT_INITS))}")
        if self.teacher_cache_k < 0:
            raise KdbenchError(f"teacher_cache_k must be >= 0 (0: the exact teacher), got {self.teacher_cache_k}")
        if self.eval_every < 0:
            raise KdbenchError(f"eval_every must be >= 0 (0: ten validation points per run), got {self.eval_every}")
        if self.checkpoint_every < 0:
            raise KdbenchError(f"checkpoint_every must be >= 0 (0: only after the last step), got {self.checkpoint_every}")
        if self.cache_max_gb < 0:
            raise KdbenchError(f"cache_max_gb must be >= 0 (0: no bound), got {self.cache_max_gb}")
        from kdbench.models.placement import PLACEMENTS, parse_max_memory

        if self.teacher_placement not in PLACEMENTS:
            raise KdbenchError(f"unknown teacher_placement {self.teacher_placement!r};"
                               f" {did_you_mean(self.teacher_placement, list(PLACEMENTS))}")
        parse_max_memory(self.teacher_max_memory)  # a malformed limit fails here, before any work
        from kdbench.trackers import check_trackers

        check_trackers(self.log_with)

    def to_dict(self) -> dict:
        """The fully resolved config as plain JSON data (method params under `method_params`)."""
        out = dataclasses.asdict(dataclasses.replace(self, method_params=None, suite_info=None))
        del out["suite_info"]
        out["tasks"] = list(self.tasks)
        out["method_params"] = dataclasses.asdict(self.method_params) if self.method_params is not None else {}
        return out


SECTIONS = {"train": TrainConfig, "teacher_train": TeacherTrainConfig, "data": DataConfig, "eval": EvalConfig}
TOP_LEVEL = {f.name for f in dataclasses.fields(RunConfig)} - set(SECTIONS) - {"method_params", "suite_info"}


def suites_dirs() -> list[Path]:
    """Where suite TOMLs are looked up, first match wins: the folders in KDBENCH_SUITES_DIR (separated by
    os.pathsep: a user's own presets, also for plug-in suite kinds), then suites/ of the checkout."""
    env = os.environ.get("KDBENCH_SUITES_DIR", "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p] + [Path(__file__).resolve().parent.parent / "suites"]


def suite_names() -> list[str]:
    return sorted({p.stem for folder in suites_dirs() for p in folder.glob("*.toml")})


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_name(key: str, value: str) -> str:
    """A name that becomes part of a path kdbench writes (results/<suite>/...): letters, digits, _ . - only,
    so that no config can make kdbench write outside results_dir or cache_dir."""
    if not _NAME.fullmatch(value) or ".." in value:
        raise KdbenchError(f"{key}={value!r} is not a plain name (letters, digits, '_', '.', '-'; no '/' or '..');"
                           f" kdbench uses it in the paths it writes under results_dir")
    return value


def load_suite_file(name: str) -> dict:
    check_name("suite", name)
    path = next((p for p in (folder / f"{name}.toml" for folder in suites_dirs()) if p.is_file()), None)
    if path is None:
        raise KdbenchError(f"unknown suite {name!r}; {did_you_mean(name, suite_names())}")
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise KdbenchError(f"{path}: invalid TOML: {e}") from None


def parse_overrides(args: list[str]) -> dict[str, str]:
    """`["train.lr=3e-5", "tasks=[sst2,rte]"]` → {"train.lr": "3e-5", "tasks": "[sst2,rte]"}."""
    out: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise KdbenchError(f"expected key=value, got {arg!r} (e.g. method=rlkd train.max_steps=100)")
        out[key.strip()] = value.strip()
    return out


def parse_list(value: str, key: str) -> list[str]:
    """`"[a,b]"` (or a bare `a`) → ["a", "b"]; names `key` when it is not a list."""
    text = value.strip()
    if text.startswith("[") != text.endswith("]"):
        raise KdbenchError(f"{key} expects a list like [a,b], got {value!r}")
    return [v.strip() for v in text.strip("[]").split(",") if v.strip()]


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, "a list like [a,b]")


def convert(key: str, value: Any, tp) -> Any:
    """Convert a CLI string or a TOML value to the field type `tp`, or fail naming the key."""
    if typing.get_origin(tp) is tuple:
        if isinstance(value, str):
            items = [v.strip() for v in value.strip().strip("[]").split(",") if v.strip()]
        elif isinstance(value, list):
            items = [str(v) for v in value]
        else:
            raise KdbenchError(f"{key} expects {_type_name(tp)}, got {value!r}")
        return tuple(items)
    if isinstance(value, str) and tp is not str:
        text = value.strip().lower()
        try:
            if tp is bool:
                if text in ("true", "1", "yes"):
                    return True
                if text in ("false", "0", "no"):
                    return False
                raise ValueError
            return tp(value)
        except ValueError:
            raise KdbenchError(f"{key} expects {_type_name(tp)}, got {value!r}") from None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise KdbenchError(f"{key} expects {_type_name(tp)}, got {value!r}")
    return value


def _fields(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _flatten_toml(table: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten_toml(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


SUITE_FILE_ONLY = {"kind", "version", "description", "family", "reference", "budget_bound", "metric", "methods"}  # suite metadata


def _known_keys(method_name: str) -> list[str]:
    keys = sorted(TOP_LEVEL)
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{k}" for k in _fields(cls)]
    if method_name in METHODS:
        keys += [f"method.{k}" for k in _fields(METHODS.get(method_name).params)]
    return keys


def resolve(overrides: dict[str, str], environ: dict[str, str] | None = None) -> RunConfig:
    """Merge defaults, environment, the suite file and overrides into one RunConfig."""
    import kdbench.methods  # noqa: F401  (registers the methods)

    environ = os.environ if environ is None else environ
    suite_name = overrides.get("suite", "glue")
    suite_file = load_suite_file(suite_name)
    suite_values = {k: v for k, v in _flatten_toml(suite_file).items() if k not in SUITE_FILE_ONLY}
    method_name = overrides.get("method", suite_values.get("method", "none"))
    METHODS.get(method_name)  # unknown method: error with suggestions

    merged: dict[str, Any] = {}
    if environ.get("KDBENCH_DATA_DIR"):
        merged["data_dir"] = environ["KDBENCH_DATA_DIR"]
    if environ.get("KDBENCH_CACHE_DIR"):
        merged["cache_dir"] = environ["KDBENCH_CACHE_DIR"]
    for key, value in suite_values.items():
        if key.startswith("method."):
            owner, _, param = key[len("method.") :].partition(".")
            if owner not in METHODS:
                raise KdbenchError(f"suites/{suite_name}.toml: [method.{owner}] names no method; {did_you_mean(owner, METHODS.names())}")
            if owner == method_name:
                merged[f"method.{param}"] = value
        else:
            merged[key] = value
    merged.update(overrides)
    merged["suite"] = suite_name
    merged["method"] = method_name
    return dataclasses.replace(build(merged, method_name, suite_name), suite_info=SuiteInfo.of(suite_name, suite_file))


def build(values: dict[str, Any], method_name: str, suite_name: str) -> RunConfig:
    known = _known_keys(method_name)
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    method_values: dict[str, Any] = {}
    method = METHODS.get(method_name)
    method_types = _fields(method.params)
    run_types = _fields(RunConfig)
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if key in TOP_LEVEL:
            top[key] = convert(key, value, run_types[key])
        elif head == "method" and rest in method_types:
            method_values[rest] = convert(key, value, method_types[rest])
        elif head in SECTIONS and rest in _fields(SECTIONS[head]):
            sections[head][rest] = convert(key, value, _fields(SECTIONS[head])[rest])
        else:
            hint = did_you_mean(key, known)
            if head == "method" and rest:
                params = ", ".join(f"method.{k}" for k in method_types) or "none"
                hint = f"method {method_name!r} takes: {params}"
            raise KdbenchError(f"unknown key {key!r}; {hint}")
    built = {}
    for name, cls in SECTIONS.items():
        try:
            built[name] = cls(**sections[name])
        except KdbenchError as e:  # the dataclass names the field; add the section the user typed
            raise KdbenchError(f"{name}.{e}") from None
    params = method.make_params(method_values)
    return RunConfig(**top, **built, method_params=params)

