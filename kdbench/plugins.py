"""Methods, suites and metrics from outside the package: the user's own files and installed plug-ins.

    kdbench run suite=char method=my_kd include=[my_method.py]
    kdbench leaderboard suite=char include=[my_method.py]

A plug-in file registers with the same calls as the built-ins (`register_method`, `register_suite_kind`,
`metric_specs.declare`) and is imported once, before the config is read, so a method it defines is
validated, run, cached, resumed, recorded and ranked exactly like a built-in (a suite kind also needs
its TOML preset under suites/ or in a folder of `KDBENCH_SUITES_DIR`, searched first). Installed packages offer
plug-ins through the entry-point group `kdbench.plugins` (each entry point names a module, imported on
every command). `include` is not a config key: a record names each plug-in file with its sha256
(`plugins`), and its config hash does not depend on where the file lies.

A plug-in that fails to import is one line naming the file, the line and the error, exit code 2.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import sys
import traceback
from pathlib import Path

from kdbench.errors import KdbenchError

GROUP = "kdbench.plugins"
LOADED: dict[str, dict] = {}  # plug-in name -> {"path" or "entry_point", "sha256"}: what this process imported


def split_include(args: list[str]) -> tuple[list[str], list[str]]:
    """(the files of every `include=[...]` among args, the other args)."""
    from kdbench.config import parse_list

    files, rest = [], []
    for arg in args:
        if arg.startswith("include="):
            files += [f for f in parse_list(arg[len("include="):], "include") if f]
        else:
            rest.append(arg)
    return files, rest


def _where(error: BaseException, path: Path) -> str:
    """`file:line` of the error inside the plug-in (the line of a syntax error), else the file alone."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f"{path}:{error.lineno}"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return f"{path}:{frames[-1].lineno}" if frames else str(path)


def load_file(file: str) -> None:
    """Import one plug-in file (once per process) so that its decorators register what it defines."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise KdbenchError(f"plug-in {file} does not exist; include=[...] takes paths to Python files")
    if path.suffix != ".py":
        raise KdbenchError(f"plug-in {file} is not a .py file; include=[...] takes paths to Python files")
    key = str(path.resolve())
    if key in LOADED:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    name = f"kdbench_plugin_{path.stem}_{digest[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except KdbenchError as e:
        del sys.modules[name]
        raise KdbenchError(f"plug-in {_where(e, path)}: {e}") from None
    except BaseException as e:  # noqa: BLE001 - whatever the user's file raises, it is one line
        del sys.modules[name]
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise KdbenchError(f"plug-in {_where(e, path)}: {type(e).__name__}: {e}; fix the file or drop it from"
                           " include=") from None
    LOADED[key] = {"path": str(path), "sha256": digest}


def load_entry_points() -> None:
    """Import every installed plug-in of the group `kdbench.plugins`."""
    for entry in importlib.metadata.entry_points(group=GROUP):
        key = f"entry point {entry.name} ({entry.value})"
        if key in LOADED:
            continue
        try:
            module = entry.load()
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            dist = getattr(entry, "dist", None)
            owner = f" of {dist.name}" if dist is not None else ""
            raise KdbenchError(f"plug-in {key}{owner} fails to import: {type(e).__name__}: {e}; reinstall or"
                               " uninstall that package") from None
        source = getattr(module, "__file__", None)
        LOADED[key] = {"entry_point": entry.value,
                       "sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else None}


def load(files: list[str]) -> None:
    """The built-in registries first (a plug-in may extend or reuse them), then the installed plug-ins and
    the files, in order."""
    import kdbench.methods  # noqa: F401
    import kdbench.suites  # noqa: F401

    load_entry_points()
    for file in files:
        load_file(file)


def provenance() -> list[dict]:
    """What a record says of the plug-ins this process imported."""
    return [dict(v) for _, v in sorted(LOADED.items())]
