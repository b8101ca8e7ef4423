"""Where the teacher lives: whole on the training device (default), or spread by accelerate over the GPUs,
CPU memory and disk when it is larger than one device (`teacher_placement=auto`).

    kdbench run suite=perplexity teacher=<big model> teacher_placement=auto teacher_max_memory="0=30GiB,1=30GiB,cpu=100GiB"

`auto` uses accelerate's big-model inference: `infer_auto_device_map` cuts the teacher at its decoder /
encoder blocks (the model's `_no_split_modules`), fills the devices of `teacher_max_memory` in order
(GPUs by index, then `cpu`), and puts the rest on disk (memory-mapped under cache_dir/offload, one folder
per process, removed at exit); `dispatch_model` adds hooks that move activations between the pieces
(layer-wise sharding for a no-grad teacher: the pieces run one after another) and return outputs on the
input's device. With an empty `teacher_max_memory` accelerate takes what each device has free. Under
several processes (`accelerate launch`) each process may use its own GPU, CPU memory and disk.

Placement changes where the teacher's matmuls run, not what it computes: outputs equal the unplaced
teacher's to float rounding (tests/test_teacher_placement.py). The student always trains on one device.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch

from kdbench.errors import KdbenchError

PLACEMENTS = ("device", "auto")


def is_dispatched(model: torch.nn.Module) -> bool:
    """Placed by accelerate's hooks (moving it whole would undo the placement, or fail for disk pieces)."""
    return bool(getattr(model, "hf_device_map", None))


def to_device(model: torch.nn.Module, device) -> torch.nn.Module:
    """`model.to(device)`, except for a model spread over devices by `place_teacher`."""
    return model if is_dispatched(model) else model.to(device)


def parse_max_memory(text: str) -> dict:
    """"0=30GiB,cpu=100GiB" → {0: "30GiB", "cpu": "100GiB"}; "" → {} (what each device has free)."""
    out: dict = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        device, sep, amount = item.partition("=")
        device, amount = device.strip(), amount.strip()
        if not sep or not amount or not (device == "cpu" or device.isdigit()):
            raise KdbenchError(f"teacher_max_memory entry {item!r} is not DEVICE=SIZE; write it as"
                               " \"0=30GiB,cpu=100GiB\" (GPU indices, cpu; sizes like 512MiB, 30GiB or bytes)")
        out[int(device) if device.isdigit() else device] = int(amount) if amount.isdigit() else amount
    return out


def place_teacher(teacher: torch.nn.Module, placement: str, max_memory: str, offload_root: Path,
                  device: torch.device, log=print) -> torch.nn.Module:
    """The teacher on `device` ("device"), or spread over GPUs, CPU memory and disk ("auto")."""
    if placement not in PLACEMENTS:
        raise KdbenchError(f"unknown teacher_placement {placement!r}; choose one of {', '.join(PLACEMENTS)}")
    teacher = teacher.eval()
    if placement == "device":
        return to_device(teacher, device)
    if is_dispatched(teacher):  # a sweep's later cells reuse the placed teacher
        return teacher
    from accelerate import dispatch_model, infer_auto_device_map

    limits = parse_max_memory(max_memory)
    if device.type == "cuda" and torch.distributed.is_available() and torch.distributed.is_initialized():
        own = device.index if device.index is not None else torch.cuda.current_device()
        limits = {k: v for k, v in limits.items() if k in (own, "cpu")} or None
    no_split = list(getattr(teacher, "_no_split_modules", None) or [])
    device_map = infer_auto_device_map(teacher, max_memory=limits or None, no_split_module_classes=no_split)
    if set(device_map.values()) == {"disk"}:
        raise KdbenchError(f"teacher_max_memory={max_memory!r} leaves no room for any block of the teacher in memory"
                           " (its largest block must fit beside the first); raise it")
    if "disk" in device_map.values() and not no_split:
        raise KdbenchError(f"{type(teacher).__name__} names no blocks to cut at (_no_split_modules); raise"
                           " teacher_max_memory so that it fits in memory, or use teacher_placement=device")
    offload_root.mkdir(parents=True, exist_ok=True)
    offload_dir = Path(tempfile.mkdtemp(prefix="teacher-", dir=offload_root))
    atexit.register(shutil.rmtree, offload_dir, True)
    main = "cpu" if device.type == "cpu" else device
    teacher = dispatch_model(teacher, device_map=device_map, main_device=main, offload_dir=str(offload_dir))
    where: dict[str, int] = {}
    for target in device_map.values():
        where[str(target)] = where.get(str(target), 0) + 1
    log(f"teacher placed by accelerate: {', '.join(f'{n} module groups on {d}' for d, n in where.items())}"
        + (f"; disk pieces in {offload_dir}" if "disk" in where else ""))
    return teacher
