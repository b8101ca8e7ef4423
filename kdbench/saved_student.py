"""Keep the distilled student: a folder that `AutoModel*.from_pretrained` loads, with its tokenizer and a
model card.

    kdbench run suite=glue method=kd                       # save_student=true: results/glue/students/<run id>/<task>/
    kdbench sweep suite=glue                               # sweeps save none unless save_student=true
    kdbench run suite=glue method=kd students_dir=/big/disk

One folder per task (each GLUE task trains its own student; tasks that share one student, as lm-eval's do,
share its folder). Only the student model is saved: a method's training-only modules (fakd's projections,
the on-policy state) live outside it and are not. A classifier's label mapping goes into the config
(`id2label`), and so do a causal-LM GLUE student's label words. Weights stay out of git (`.gitignore`
ignores `students/`): they are never part of the published results.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from kdbench import __version__
from kdbench.errors import KdbenchError

SPARE_BYTES = 64 * 2**20  # tokenizer files and the card, beside the weights


def students_folder(cfg, run_id: str) -> Path:
    """Where this run's students go: `students_dir`/<run id>, by default <results_dir>/<suite>/students/<run id>."""
    base = Path(cfg.students_dir) if cfg.students_dir else Path(cfg.results_dir) / cfg.suite / "students"
    return base / run_id


def check_writable(folder: Path) -> None:
    """Refuse, before any training, a students folder that cannot be created or written."""
    probe = folder / ".kdbench-write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise KdbenchError(f"cannot write the student to {folder}: {e.strerror or e}; pass a writable"
                           " students_dir= or save_student=false") from None


def weights_bytes(model) -> int:
    """What the model's weights take on disk, tied tensors counted once."""
    seen, total = set(), 0
    for tensor in model.state_dict().values():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    return total


def check_space(folder: Path, model, students: int) -> None:
    """Refuse, before training, to start a run whose students would not fit on the disk."""
    need = students * (weights_bytes(model) + SPARE_BYTES)
    free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    if need > free:
        raise KdbenchError(f"saving {students} student(s) needs about {need / 2**30:.2f} GiB but {folder} has"
                           f" {free / 2**30:.2f} GiB free; free space, pass students_dir= elsewhere or"
                           " save_student=false")


def label_mapping(data) -> dict[int, str] | None:
    """A classifier's labels (or a causal-LM GLUE form's label words), by output index; None for other tasks."""
    names = getattr(data, "words", None) or getattr(getattr(data, "task", None), "labels", None)
    return {i: str(name) for i, name in enumerate(names)} if names else None


def save_student(model, tokenizer, folder: Path, record: dict, task: str, data) -> None:
    """Write the student, its tokenizer and its model card into `folder` (a fresh folder: written to a
    temporary name and renamed, so a crash leaves no half-saved student under the final name)."""
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    mapping = label_mapping(data)
    config = getattr(model, "config", None)
    if mapping and config is not None:
        config.id2label = mapping
        config.label2id = {name: i for i, name in mapping.items()}
    try:
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        (partial / "README.md").write_text(model_card(record, task, data, mapping, auto_class(model)),
                                            encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(partial, folder)
    except OSError as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise KdbenchError(f"cannot write the student to {folder}: {e.strerror or e}") from None


def auto_class(model) -> str:
    """The transformers Auto class that loads what `model.save_pretrained` wrote (AnswerLM saves its LM)."""
    name = type(getattr(model, "lm", model)).__name__
    return "AutoModelForSequenceClassification" if "SequenceClassification" in name else "AutoModelForCausalLM"


def model_card(record: dict, task: str, data, mapping: dict | None, loader: str) -> str:
    """The student's README: what it was distilled from, how, on what data, its scores and where they came from."""
    cfg = record["config"]
    commit = record.get("git_commit") or {}
    train = cfg["train"]
    params = json.dumps(record["method_params"], sort_keys=True) if record["method_params"] else "(none)"
    data_info = record["data"].get(task, {})
    hashes = [f"- training data: `{data_info.get('train')}` ({data_info.get('train_rows')} rows), sha256"
              f" `{data.train.sha256 or 'n/a'}`"]
    for split, rows in data.evals.items():
        hashes.append(f"- evaluation `{split}`: `{rows.source}` ({len(rows.examples)} rows), sha256"
                      f" `{rows.sha256 or 'n/a'}`")
    scores = record["metrics"].get(task, {})
    teacher_scores = record["teacher_metrics"].get(task, {})
    rows = [f"| {k} | {v:.4g} | {teacher_scores.get(k, float('nan')):.4g} |" for k, v in scores.items()
            if isinstance(v, (int, float))]
    lines = [
        "---",
        "library_name: transformers",
        "tags: [kdbench, knowledge-distillation]",
        "---",
        f"# {record['student']['name']} distilled with `{record['method']}` ({cfg['suite']} / {task})",
        "",
        f"A student trained by kdbench {__version__} (code `{commit.get('sha') or 'unknown'}`"
        f"{', with uncommitted changes' if commit.get('dirty') else ''}), run `{record['run_id']}`.",
        "",
        "## Distillation",
        f"- teacher: `{record['teacher']['name']}` ({record['params'].get('teacher', '?')} parameters)",
        f"- student: `{record['student']['name']}` ({record['params'].get('student', '?')} parameters)",
        f"- method: `{record['method']}`, parameters `{params}`",
        f"- seed: {record['seed']}",
        f"- budget: {train['max_steps']} steps x batch {train['batch_size']}, lr {train['lr']}"
        f" ({train.get('schedule', 'linear')} schedule), max length {train['max_length']}",
        *(["- label mapping (`config.id2label`): " + ", ".join(f"{i} = {n}" for i, n in mapping.items())]
          if mapping else []),
        "",
        "## Data",
        *hashes,
        "",
        "## Scores",
        f"On the evaluation data above, as the record `{record['run_id']}.json` gives them (one training seed;"
        " the leaderboard gives confidence intervals over seeds):",
        "",
        "| metric | student | teacher |",
        "|---|---|---|",
        *rows,
        "",
        "## Load",
        "```python",
        f"from transformers import {loader}, AutoTokenizer",
        f"model = {loader}.from_pretrained(\"<this folder>\")",
        "tokenizer = AutoTokenizer.from_pretrained(\"<this folder>\")",
        "```",
        "",
    ]
    return "\n".join(lines)


def check_hub(repo_id: str, save: bool) -> None:
    """Before any training: a push needs a saved student, the network and a token. One line when not."""
    from huggingface_hub import HfApi, constants, get_token

    if not save:
        raise KdbenchError(f"push_to_hub={repo_id} pushes the saved student; drop save_student=false")
    if constants.HF_HUB_OFFLINE:
        raise KdbenchError(f"push_to_hub={repo_id} needs the network, and HF_HUB_OFFLINE is set; unset it or drop"
                           " push_to_hub (the student is saved locally either way)")
    if not get_token():
        raise KdbenchError(f"push_to_hub={repo_id} needs a Hugging Face token: run `hf auth login` or set HF_TOKEN")
    try:
        HfApi().whoami()
    except Exception as e:  # noqa: BLE001 (no network, a refused token: either way nothing can be pushed)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KdbenchError(f"push_to_hub={repo_id}: the hub cannot be reached or refuses the token ({first});"
                           " check the network and `hf auth whoami`, or drop push_to_hub") from None


def push_student(repo_id: str, folder: Path, task: str, several: bool) -> str:
    """Upload a saved student folder to the hub repo (created if needed); with several tasks, each in its own
    subfolder (`from_pretrained(repo, subfolder=task)`). Returns where it went."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), path_in_repo=task if several else "",
                          commit_message=f"kdbench student: {folder.parent.name} / {task}")
    except Exception as e:  # noqa: BLE001 (the local student is kept; the record says the push failed)
        raise KdbenchError(f"push_to_hub={repo_id}: the upload of {folder} failed ({type(e).__name__}: {e});"
                           " the student is saved there, upload it with `hf upload`") from None
    return f"https://huggingface.co/{repo_id}" + (f"/tree/main/{task}" if several else "")
