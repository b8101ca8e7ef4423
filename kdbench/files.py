"""Small file helpers shared by data loading, model conversion and caches."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_tree(folder: Path) -> None:
    """fsync every file in `folder` and the folder itself: call before renaming a finished entry into place,
    so that after a crash the entry is either absent or whole."""
    import os

    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    import os

    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_folder(tmp: Path, target: Path) -> None:
    """Move a finished entry built in `tmp` into place: fsync its files, replace any old `target`, rename,
    fsync the parent. After a crash the entry is either absent or whole."""
    import shutil

    fsync_tree(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    fsync_dir(target.parent)
