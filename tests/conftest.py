"""Test settings: never touch the network; find the real data root that CI puts beside the checkout."""

import os
from pathlib import Path

import pytest

for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[var] = "1"

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root: $KDBENCH_DATA_DIR, else ../shared/data beside the checkout."""
    root = Path(os.environ.get("KDBENCH_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (root / "glue" / "SST-2" / "train.tsv").is_file():
        message = f"real data root not found at {root}; set KDBENCH_DATA_DIR"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has ../shared: a missing root is a failure there
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One teacher cache for the whole session, so the tiny teacher is fine-tuned once."""
    return tmp_path_factory.mktemp("kdbench-cache")


def benchmark_module(name: str):
    """`benchmarks/<name>.py` imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def as_committed(results: Path) -> Path:
    """Mark the records under `results` as run from a clean tree: whether they were depends on the checkout
    running the tests (a developer's uncommitted changes), and the leaderboard leaves dirty records out."""
    import json

    for path in results.glob("*/*.json"):
        record = json.loads(path.read_text())
        if isinstance(record, dict) and "git_commit" in record:
            record["git_commit"] = {"sha": record["git_commit"].get("sha") or "0" * 40, "dirty": False}
            path.write_text(json.dumps(record))
    return results
