"""Saved students (kdbench.saved_student): `kdbench run` keeps a folder that transformers reloads and that
scores exactly the record's number; sweeps keep none unless asked; a folder that cannot take them stops the
run before training, with one line and no record."""
import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from kdbench.cli import main
from kdbench.config import resolve
from kdbench.experiment import data_root_of, suite_of


def _args(tmp_path, cache_dir, data_root, suite, method, *extra):
    return [f"suite={suite}", f"method={method}", f"data_dir={data_root}", f"results_dir={tmp_path / 'results'}",
            f"cache_dir={cache_dir}", *extra]


def _rescore(args: list[str], task: str, folder: Path, auto) -> dict:
    """Score the reloaded folder on the run's own evaluation data, as the run scored its student."""
    cfg = resolve(dict(a.split("=", 1) for a in args))
    suite, _ = suite_of(cfg)
    data = suite.load(task, data_root_of(cfg), cfg.data.max_train_examples, cfg.data.max_eval_examples)
    suite.hold_out(data, cfg.data.val_examples)
    model = suite.adapt(auto.from_pretrained(folder).eval())
    return suite.evaluate(model, AutoTokenizer.from_pretrained(folder), data, cfg, "cpu")[0]


@pytest.mark.parametrize("suite,method,tasks,auto", [
    ("glue_tiny", "kd", "[sst2,stsb]", AutoModelForCausalLM),  # the causal-LM form, a label-word regression too
    ("glue_enc_tiny", "fakd", "[sst2]", AutoModelForSequenceClassification),  # projections are not the student
])
def test_run_keeps_a_student_that_reloads_and_scores_the_records_number(tmp_path, cache_dir, data_root, suite,
                                                                       method, tasks, auto):
    args = _args(tmp_path, cache_dir, data_root, suite, method, f"tasks={tasks}")
    assert main(["run", *args]) == 0
    (path,) = (tmp_path / "results" / suite).glob(f"{method}-*.json")
    record = json.loads(path.read_text())
    for task, folder in record["students"].items():
        folder = Path(folder)
        assert folder == tmp_path / "results" / suite / "students" / record["run_id"] / task
        assert _rescore(args, task, folder, auto) == record["metrics"][task]  # exactly, on CPU
        card = (folder / "README.md").read_text()
        assert record["run_id"] in card and f"`{method}`" in card and record["teacher"]["name"] in card
        assert auto.__name__ in card and "sha256" in card
        config = json.loads((folder / "config.json").read_text())
        assert config["id2label"]  # the label mapping (or the label words) travels with the weights
        # only the student's own tensors: a model built from the saved config has every saved name (fakd's
        # projections, trained beside the student, would be extra)
        own = set(auto.from_config(AutoConfig.from_pretrained(folder)).state_dict())
        assert set(_weight_names(folder)) <= own
    assert not list((tmp_path / "results" / suite / "students").glob(".*partial"))


def _weight_names(folder: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as f:
        return list(f.keys())


def test_a_sweep_keeps_no_student_unless_asked(tmp_path, cache_dir, data_root):
    args = _args(tmp_path, cache_dir, data_root, "glue_tiny", "none")[2:]
    assert main(["sweep", "suite=glue_tiny", "methods=[none]", "seeds=[0]", *args]) == 0
    assert not (tmp_path / "results" / "glue_tiny" / "students").exists()
    assert main(["sweep", "suite=glue_tiny", "methods=[none]", "seeds=[0]", "save_student=true", *args]) == 0
    # save_student is an output choice, not a new student: the complete cell is not run again
    assert not (tmp_path / "results" / "glue_tiny" / "students").exists()


def test_an_unwritable_students_folder_stops_before_training(tmp_path, cache_dir, data_root, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    args = _args(tmp_path, cache_dir, data_root, "glue_tiny", "kd", f"students_dir={blocked / 'students'}")
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert "cannot write the student to" in err and "save_student=false" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "results").rglob("*.json"))


def test_too_little_disk_space_stops_before_training(tmp_path, cache_dir, data_root, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**6, 10**6))
    args = _args(tmp_path, cache_dir, data_root, "glue_tiny", "kd")
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert "GiB free" in err and "students_dir=" in err and "Traceback" not in err
    assert not list((tmp_path / "results").rglob("*.json"))
    assert "training student" not in capsys.readouterr().out


def test_push_to_hub_stops_before_training_offline_or_without_a_token(tmp_path, cache_dir, data_root, capsys,
                                                                      monkeypatch):
    import huggingface_hub

    args = _args(tmp_path, cache_dir, data_root, "glue_tiny", "kd", "push_to_hub=someone/student")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["run", *args]) == 2
    err = capsys.readouterr()
    assert "needs the network, and HF_HUB_OFFLINE is set" in err.err and "training student" not in err.out
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["run", *args]) == 2
    assert "needs a Hugging Face token" in capsys.readouterr().err
    assert main(["run", *args, "save_student=false"]) == 2
    assert "drop save_student=false" in capsys.readouterr().err
    assert not list((tmp_path / "results").rglob("*.json"))


def test_push_to_hub_uploads_the_saved_folder(tmp_path, cache_dir, data_root, monkeypatch):
    """The hub is out of reach here, so HfApi is replaced by a recorder: this checks what kdbench asks of it."""
    import huggingface_hub

    calls = []

    class Recorder:
        def whoami(self):
            return {"name": "someone"}

        def create_repo(self, repo_id, exist_ok):
            calls.append(("create", repo_id, exist_ok))

        def upload_folder(self, repo_id, folder_path, path_in_repo, commit_message):
            calls.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir()), path_in_repo))

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_x")
    monkeypatch.setattr(huggingface_hub, "HfApi", Recorder)
    args = _args(tmp_path, cache_dir, data_root, "glue_tiny", "kd", "push_to_hub=someone/student")
    assert main(["run", *args]) == 0
    (path,) = (tmp_path / "results" / "glue_tiny").glob("kd-*.json")
    record = json.loads(path.read_text())
    assert record["pushed"] == {"sst2": "https://huggingface.co/someone/student"}
    assert calls[0] == ("create", "someone/student", True)
    assert calls[1][0] == "upload" and calls[1][3] == "" and {"README.md", "config.json", "model.safetensors"} <= set(
        calls[1][2])


def test_the_html_leaderboard_links_each_row_to_its_students_model_cards(tmp_path, cache_dir, data_root):
    import re

    from tests.conftest import as_committed

    args = _args(tmp_path, cache_dir, data_root, "glue_tiny", "none")
    assert main(["run", *args]) == 0
    results = as_committed(tmp_path / "results")
    (path,) = (results / "glue_tiny").glob("none-*.json")
    run_id = json.loads(path.read_text())["run_id"]
    assert main(["leaderboard", f"results_dir={results}", "suite=glue_tiny"]) == 0
    page = (results / "leaderboard_glue_tiny.html").read_text()
    hrefs = re.findall(r'<a href="([^"]+)">seed 1</a>', page)  # glue_tiny's seed is 1
    assert hrefs == [f"glue_tiny/students/{run_id}/sst2/README.md"]  # relative to the page: the folder moves whole
    assert (results / hrefs[0]).is_file()
