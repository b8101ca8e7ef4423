"""Which uncommitted changes make a record "dirty" (kdbench.results.git_commit)."""
import subprocess

import pytest

from kdbench.results import git_commit


def _git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                   capture_output=True)


@pytest.fixture
def checkout(tmp_path):
    for rel in ("kdbench/losses.py", "suites/char.toml", "pyproject.toml", "results/char/kd-1.json", "README.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("original\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_a_clean_checkout_and_one_whose_results_or_docs_changed_are_clean(checkout):
    assert git_commit(checkout)["dirty"] is False
    (checkout / "results/char/kd-1.json").unlink()  # a record moved aside before a re-run
    (checkout / "README.md").write_text("edited\n")
    (checkout / "results/char/kd-2.json").write_text("{}")  # untracked: never counted
    state = git_commit(checkout)
    assert state["dirty"] is False and len(state["sha"]) == 40


@pytest.mark.parametrize("code", ["kdbench/losses.py", "suites/char.toml", "pyproject.toml"])
def test_an_uncommitted_change_to_code_or_a_suite_file_is_dirty(checkout, code):
    (checkout / code).write_text("edited\n")
    assert git_commit(checkout)["dirty"] is True


def test_outside_a_git_checkout_nothing_is_claimed(tmp_path, monkeypatch):
    monkeypatch.delenv("KDBENCH_SOURCE_COMMIT", raising=False)
    assert git_commit(tmp_path) == {"sha": None, "dirty": None}


def test_a_copy_without_history_takes_the_commit_its_maker_declares_and_leaves_dirty_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_SOURCE_COMMIT", "ab" * 20)
    assert git_commit(tmp_path) == {"sha": "ab" * 20, "dirty": None, "declared": True}


def test_a_declared_commit_that_is_the_head_changes_nothing(checkout, monkeypatch):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True).stdout.strip()
    monkeypatch.setenv("KDBENCH_SOURCE_COMMIT", head)
    assert git_commit(checkout) == {"sha": head, "dirty": False}


def test_a_copy_whose_history_lags_its_files_takes_the_declared_commit(checkout, monkeypatch):
    """The lent GPU machine's copy had the session's first commit as HEAD and the files of a later one."""
    first = git_commit(checkout)["sha"]
    (checkout / "kdbench/losses.py").write_text("later\n")
    _git(checkout, "commit", "-qam", "later")
    later = git_commit(checkout)["sha"]
    _git(checkout, "reset", "-q", "--soft", first)  # HEAD back at the first commit, files of the later one
    assert git_commit(checkout)["dirty"] is True
    monkeypatch.setenv("KDBENCH_SOURCE_COMMIT", later)
    assert git_commit(checkout) == {"sha": later, "dirty": False, "declared": True, "git_head": first}
    (checkout / "kdbench/losses.py").write_text("later still\n")
    assert git_commit(checkout)["dirty"] is True
    monkeypatch.setenv("KDBENCH_SOURCE_COMMIT", "ab" * 20)  # a commit the copy does not hold: dirty unknown
    assert git_commit(checkout) == {"sha": "ab" * 20, "dirty": None, "declared": True, "git_head": first}
