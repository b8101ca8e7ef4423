"""An unreachable hub is found once, in seconds, and the command goes on offline without retry lines."""
import os

import pytest

from kdbench import hub_probe
from kdbench.cli import main


@pytest.fixture
def online_declared(monkeypatch):
    """As a user without HF_HUB_OFFLINE: the variables unset (monkeypatch restores the tests' offline setting)."""
    for var in hub_probe.OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)


def test_a_refused_connection_is_a_reason_within_the_timeout(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens here
    reason = hub_probe.unreachable_reason()
    assert reason is not None and reason.startswith("127.0.0.1:9: ")


def test_unreachable_hub_one_line_then_offline_with_local_data(online_declared, monkeypatch, tmp_path, data_root,
                                                               cache_dir, capsys):
    monkeypatch.setattr(hub_probe, "unreachable_reason", lambda: "huggingface.co:443: Name or service not known")
    code = main(["run", "suite=perplexity_tiny", "method=kd", f"data_dir={data_root}", f"cache_dir={cache_dir}",
                 f"results_dir={tmp_path / 'r'}", "save_student=false"])
    err = capsys.readouterr().err
    assert code == 0 and os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert err.count("the Hugging Face hub is unreachable") == 1 and "going on offline" in err
    assert "Retrying" not in err and "thrown while requesting" not in err


def test_a_reachable_hub_or_a_declared_offline_mode_changes_nothing(online_declared, monkeypatch):
    said = []
    monkeypatch.setattr(hub_probe, "unreachable_reason", lambda: None)
    hub_probe.ensure_reachable_or_offline(said.append)
    assert said == [] and "HF_HUB_OFFLINE" not in os.environ
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_probe, "unreachable_reason", lambda: pytest.fail("probed although offline was declared"))
    hub_probe.ensure_reachable_or_offline(said.append)
    assert said == []
