"""Where a run's teacher outputs come from: the model run live, or the teacher-output cache.

    source, meta = open_source(cfg, method, params, data, tokenizer, teacher, student, loader, accelerator, log)
    teacher_out = source.outputs(batch)   # a TeacherOut, aligned with the batch's targets

The runner makes that one call per batch and never sees which source it has. The choice is made here,
once per run, from what the method declares (`needs`, `accepts_topk`, `teacher_layers`) and the cache
settings; `meta` says which was chosen and why, for the record.
"""

from __future__ import annotations

from typing import Protocol

import torch
from accelerate.utils import send_to_device
from torch.profiler import record_function

from kdbench.cache_entries import hold
from kdbench.data.batching import LMCollator
from kdbench.models.load import cache_root, model_identity
from kdbench.models.placement import to_device
from kdbench.runner import model_inputs, output_flags
from kdbench.teacher import cache as output_cache
from kdbench.teacher.outputs import ByteAlignment, TeacherOut
from kdbench.teacher.weights import teacher_key, weights_key_parts


class TeacherSource(Protocol):
    model: torch.nn.Module  # the teacher itself (a data policy samples from it)

    def outputs(self, batch: dict) -> TeacherOut: ...

    def fresh(self, batch: dict) -> TeacherOut:
        """The outputs on a batch that is not the data set's (sampled responses): always the live model."""


class LiveTeacher:
    """The teacher model run on every batch, without gradients (bf16 autocast where the accelerator has it)."""

    def __init__(self, model: torch.nn.Module, needs: frozenset, accelerator):
        self.model = to_device(model, accelerator.device).eval()
        self.needs, self.accelerator = needs, accelerator

    def forward(self, batch: dict):
        """The model's own outputs (logits, and the features the method needs), as the cache stores them."""
        with torch.no_grad(), self.accelerator.autocast():
            return self.model(**model_inputs(batch), **output_flags(self.needs))

    def outputs(self, batch: dict) -> TeacherOut:
        with record_function("kdbench/teacher_forward"):
            return TeacherOut.of(self.forward(batch), batch)

    fresh = outputs


class CachedTeacher:
    """The teacher-output cache (kdbench.teacher.cache) in front of the live teacher: rows not stored yet
    run the teacher once and are written; stored rows are read and verified."""

    def __init__(self, store: output_cache.TeacherOutputs, live: LiveTeacher):
        self.store, self.live = store, live
        self.model = live.model

    def fresh(self, batch: dict) -> TeacherOut:
        return self.live.outputs(batch)

    def outputs(self, batch: dict) -> TeacherOut:
        with record_function("kdbench/teacher_cache_read"):
            return self.store.batch(batch, self.live.forward).aligned(batch)

    def close(self) -> dict:
        """Flush the filled rows; what the record keeps of this run's use of the cache."""
        self.store.close()
        stats = self.store.stats
        return {**self.store.meta(), "hit": stats.rows_filled == 0}


def output_size(task, teacher_config) -> int:
    """How many outputs the distilled distribution has: a classifier head's labels, else the vocabulary
    (language modelling, and the causal-LM GLUE form, read at the answer position)."""
    if task.num_labels and not getattr(task, "answer_position", False):
        return task.num_labels
    return teacher_config.vocab_size


class PairedTeacher:
    """A teacher that reads the data through its own tokenizer (a cross-tokenizer method: ULD). Each student
    batch's examples (`example_index`) are looked up in the teacher's own tokenisation of the same training
    rows (`features`, aligned with the student's; None where the teacher's tokens leave no response) and run
    live; the outputs carry the teacher's response targets as `position_mask`."""

    def __init__(self, live: LiveTeacher, features: list, pad_id: int, padding_side: str):
        self.live, self.model, self.features = live, live.model, features
        self.collate = LMCollator(pad_id, padding_side)
        self.pad_id = pad_id

    def outputs(self, batch: dict) -> TeacherOut:
        rows = [self.features[i] or {"input_ids": [self.pad_id], "labels": [-100]}  # no response: pairs nothing
                for i in batch["example_index"].tolist()]
        own = send_to_device(self.collate(rows), next(self.model.parameters()).device)
        with record_function("kdbench/teacher_forward"):
            out = self.live.forward(own)
        scored = (own["labels"][:, 1:] != -100) & own["attention_mask"][:, :-1].bool()
        alignment = None
        if any("teacher_group" in r for r in rows):  # byte alignment asked (method.align=bytes)
            student_group, teacher_group = (_padded([r.get(key, []) for r in rows], scored.device)
                                            for key in ("student_group", "teacher_group"))
            alignment = ByteAlignment(student_group, teacher_group, own["labels"][:, 1:])
        return TeacherOut(out.logits[:, :-1], position_mask=scored, alignment=alignment)

    fresh = outputs


def _padded(lists: list[list[int]], device) -> torch.Tensor:
    """Rows of ints as one `(B, max length)` tensor, padded with -1."""
    out = torch.full((len(lists), max(1, *map(len, lists))), -1, dtype=torch.long)
    for i, values in enumerate(lists):
        out[i, : len(values)] = torch.tensor(values, dtype=torch.long)
    return out.to(device)


def open_source(cfg, method, params, data, tokenizer, teacher, student, loader, accelerator, log,
                teacher_features=None):
    """(the run's teacher source, or None when the method needs no teacher; meta for the record).
    `teacher_features`: (features, pad id) of the teacher's own tokenisation, for a cross-tokenizer method."""
    needs = method.needs(params)
    if not needs:
        return None, {"used": False, "why": "the method needs no teacher"}
    live = LiveTeacher(teacher, needs, accelerator)
    if method.cross_tokenizer:
        features, pad_id = teacher_features
        return PairedTeacher(live, features, pad_id, cfg.data.padding_side), {
            "used": False, "why": "the teacher reads its own tokenisation of each example, live",
            "teacher_rows_without_response": sum(f is None for f in features)}
    if not cfg.teacher_cache:
        return live, {"used": False, "why": "teacher_cache=false"}
    lm = not data.num_labels
    hidden_layers, attention_layers = (), ()
    small_vocabulary = teacher.config.vocab_size <= output_cache.DENSE_TOKEN_VOCAB
    if needs != {"logits"}:
        if (lm and not small_vocabulary) or method.teacher_layers is None:
            return live, {"used": False, "why": f"the method needs {sorted(needs - {'logits'})}, which are cached"
                                                " for classifiers and small-vocabulary LMs only (and for methods"
                                                " that name their layers)"}
        hidden_layers, attention_layers = method.teacher_layers(params, student.config, teacher.config)
    kind, temperature = "logits", 1.0
    if lm and small_vocabulary:
        kind = "tokens"  # the full distribution of every token: exact for every method
    elif lm and cfg.teacher_cache_k == 0:
        return live, {"used": False, "why": f"exact objective: a {teacher.config.vocab_size}-token vocabulary is not"
                                            " cached per token (teacher_cache_k=k opts in to the top-k approximation"
                                            " for kd with divergence=fkl)"}
    elif lm and not method.accepts_topk(params):
        return live, {"used": False, "why": f"{cfg.method} with these params needs the dense LM teacher"}
    elif lm:
        kind, temperature = "topk", float(getattr(params, "temperature", 1.0))
    k = min(cfg.teacher_cache_k, len(tokenizer))
    weights_parts = weights_key_parts(cfg, model_identity(cfg.teacher, cfg.cache_dir or None), data)
    parts = output_cache.key_parts(weights_parts, tokenizer, data, cfg, kind, k, temperature, hidden_layers,
                                   attention_layers)
    folder = output_cache.entry_folder(cache_root(cfg), data.name, teacher_key(parts))
    hold(folder)
    lengths = tuple(len(f["input_ids"]) for f in loader.dataset.features)
    features = {"hidden_layers": hidden_layers, "attention_layers": attention_layers,
                "hidden_size": teacher.config.hidden_size, "heads": teacher.config.num_attention_heads}
    if kind == "tokens":
        # without features the entry keeps heads 0, as entries made before tokens entries held features
        # (the heads enter the offsets' hash)
        layout = output_cache.Layout("tokens", lengths, vocab=teacher.config.vocab_size,
                                     **(features if hidden_layers or attention_layers else {}))
    elif kind == "topk":
        layout = output_cache.Layout("topk", lengths, k=k, temperature=temperature)
    else:
        layout = output_cache.Layout("logits", lengths, classes=output_size(data, teacher.config), **features)
    store, meta = output_cache.open_entry(folder, parts, layout, lambda m: log(f"[{data.name}] {m}"))
    features_meta = {"hidden_layers": list(hidden_layers), "attention_layers": list(attention_layers)}
    return CachedTeacher(store, live), {"used": True, "kind": kind, **({"k": k} if kind == "topk" else {}),
                                        **(features_meta if hidden_layers or attention_layers else {}), **meta}
