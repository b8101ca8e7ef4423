from pathlib import Path

import pytest

import kdbench.methods  # noqa: F401
from kdbench.errors import KdbenchError
from kdbench.registry import METHODS, Registry


def test_duplicates_raise_and_unknown_names_suggest():
    reg = Registry("thing")
    reg.add("alpha", 1)
    with pytest.raises(ValueError, match="twice"):
        reg.add("alpha", 2)
    with pytest.raises(KdbenchError, match="did you mean 'alpha'"):
        reg.get("alpah")


def test_every_registered_method_has_its_own_test_file():
    tests = Path(__file__).parent / "methods"
    assert {"none", "kd", "rlkd", "fakd"} <= set(METHODS.names())
    # the package's own methods; a plug-in another test loaded into this process tests itself elsewhere
    for name in [n for n, m in METHODS if m.loss.__module__.startswith("kdbench.methods.")]:
        assert (tests / f"test_{name}.py").is_file(), f"method {name} has no tests/methods/test_{name}.py"
