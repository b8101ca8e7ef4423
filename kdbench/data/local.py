"""Read GLUE-format TSV files under the data root (`data_dir=` or KDBENCH_DATA_DIR).

Files are read with quoting disabled (GLUE text holds bare `"` characters), as
UTF-8 with an optional byte-order mark (MRPC's header has one). A row with too
few columns, an unknown label or a non-numeric score is an error that names the
file and the line: silently dropping rows would change the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdbench.data.glue_tasks import GlueTask
from kdbench.errors import KdbenchError
from kdbench.files import file_sha256


@dataclass(frozen=True)
class Example:
    text_a: str
    text_b: str | None
    label: int | float


@dataclass(frozen=True)
class Split:
    examples: list
    source: str  # where the rows came from, for the record
    sha256: str  # content hash of the source, for cache keys


def _column_index(task: GlueTask, header: list[str] | None, column, path: Path) -> int:
    if isinstance(column, int):
        return column
    if header is None or column not in header:
        raise KdbenchError(f"{path}: header has no column {column!r} (found {header}); is this the {task.folder} file?")
    return header.index(column)


def _parse_label(task: GlueTask, raw: str, where: str):
    if task.regression:
        try:
            return float(raw)
        except ValueError:
            raise KdbenchError(f"{where}: score {raw!r} is not a number") from None
    if raw not in task.labels:
        raise KdbenchError(f"{where}: label {raw!r} is out of range; {task.name} labels are {', '.join(task.labels)}")
    return task.labels.index(raw)


def read_tsv(task: GlueTask, path: Path) -> list[Example]:
    """Parse one GLUE TSV into examples, refusing malformed rows with file:line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise KdbenchError(f"{path}: not UTF-8 text (byte {e.start}); GLUE files are UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header = None
    first = 1
    if task.header:
        if not lines:
            raise KdbenchError(f"{path}: empty file; expected a header line and rows")
        header = lines[0].rstrip("\r").split("\t")
        first = 2
    text_idx = [_column_index(task, header, c, path) for c in task.text_columns]
    label_idx = _column_index(task, header, task.label_column, path)
    need = max(text_idx + [label_idx]) + 1
    examples = []
    for lineno, line in enumerate(lines[first - 1 :], start=first):
        cols = line.rstrip("\r").split("\t")
        if len(cols) < need:
            raise KdbenchError(
                f"{path}:{lineno}: expected at least {need} tab-separated columns, found {len(cols)}"
            )
        if header is not None and len(cols) > len(header):  # a stray tab would shift every later column
            raise KdbenchError(
                f"{path}:{lineno}: {len(cols)} tab-separated columns but the header has {len(header)};"
                " is there a tab inside a text field?"
            )
        label = _parse_label(task, cols[label_idx].strip(), f"{path}:{lineno}")
        texts = [cols[i] for i in text_idx]
        examples.append(Example(texts[0], texts[1] if len(texts) > 1 else None, label))
    if not examples:
        raise KdbenchError(f"{path}: no data rows")
    return examples


def local_split(task: GlueTask, data_root: Path, filename: str) -> Split | None:
    """The split from <data_root>/glue/<Task>/<file>, or None when the file is absent."""
    path = data_root / "glue" / task.folder / filename
    if not path.is_file():
        return None
    return Split(read_tsv(task, path), str(path), file_sha256(path))


def glue_path(task: GlueTask, data_root: Path, filename: str) -> Path:
    return data_root / "glue" / task.folder / filename
