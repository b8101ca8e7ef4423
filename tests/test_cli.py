"""The CLI end to end: every bad input exits 2 with one readable line; real runs write valid records."""

import json

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from kdbench.cli import main
from kdbench.files import file_sha256
from kdbench.leaderboard import build_group, group_key
from kdbench.results import REQUIRED
from tests.conftest import as_committed


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code, err, match):
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kdbench: error:"), err
    assert match in lines[0], lines[0]


@pytest.mark.parametrize(
    "args,match",
    [
        (["run", "suite=glu"], "unknown suite 'glu'; did you mean 'glue'"),
        (["run", "method=rkld"], "unknown method 'rkld'; did you mean 'rlkd'"),
        (["run", "tasks=[sst3]"], "unknown GLUE task 'sst3'; did you mean 'sst2'"),
        (["run", "train.max_stpes=5"], "unknown key 'train.max_stpes'; did you mean 'train.max_steps'"),
        (["run", "train.max_steps=five"], "train.max_steps expects an integer, got 'five'"),
        (["run", "data_dir=/no/such/root"], "data root /no/such/root does not exist"),
        (["fly"], "unknown command 'fly'"),
        (["ls", "methodz"], "did you mean 'methods'"),
    ],
)
def test_bad_input_exits_2_before_loading_anything(capsys, args, match):
    assert_clean_error(*run_cli(capsys, *args)[::2], match)


def test_malformed_tsv_row_and_out_of_range_label(capsys, tmp_path):
    root = tmp_path / "data"
    (root / "glue" / "SST-2").mkdir(parents=True)
    (root / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nok \t1\n")
    train = root / "glue" / "SST-2" / "train.tsv"
    common = ["run", "suite=glue_enc_tiny", f"data_dir={root}", f"results_dir={tmp_path / 'r'}", f"cache_dir={tmp_path / 'c'}"]
    train.write_text("sentence\tlabel\nfine \t1\nbroken row without a tab\n")
    assert_clean_error(*run_cli(capsys, *common)[::2], f"{train}:3: expected at least 2 tab-separated columns")
    train.write_text("sentence\tlabel\nfine \t1\nodd \t2\n")
    assert_clean_error(*run_cli(capsys, *common)[::2], f"{train}:3: label '2' is out of range")
    assert not (tmp_path / "r").exists()  # nothing half-written


def tiny_model_dir(path, vocab_size, num_labels=None):
    config = BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32)
    if num_labels:
        config.num_labels = num_labels
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    if not num_labels:  # a bare encoder config: no head recorded
        cfg = json.loads((path / "config.json").read_text())
        cfg["architectures"] = ["BertModel"]
        (path / "config.json").write_text(json.dumps(cfg))
    return path


def test_mismatched_teacher_and_student_are_refused(capsys, tmp_path, data_root):
    common = ["run", "suite=glue_enc_tiny", "method=kd", f"data_dir={data_root}", f"results_dir={tmp_path / 'r'}",
              f"cache_dir={tmp_path / 'c'}"]
    small_vocab = tiny_model_dir(tmp_path / "small-vocab", 100)
    assert_clean_error(*run_cli(capsys, *common, f"student={small_vocab}")[::2],
                       "has a vocabulary of 30522 tokens, student")
    three_labels = tiny_model_dir(tmp_path / "three-labels", 30522, num_labels=3)
    assert_clean_error(*run_cli(capsys, *common, f"student={three_labels}")[::2], "has a 3-label head but sst2 has 2")
    assert_clean_error(*run_cli(capsys, *common, f"student={tmp_path}")[::2], "is not a model folder")


def test_dry_run_prints_the_resolved_config(capsys):
    code, out, _ = run_cli(capsys, "run", "suite=glue", "method=rlkd", "method.k=15", "dry_run=true")
    cfg = json.loads(out)
    assert code == 0 and cfg["method_params"]["k"] == 15 and cfg["tasks"] == ["sst2"]


def test_ls_lists_methods_suites_tasks_and_models(capsys):
    code, out, _ = run_cli(capsys, "ls")
    assert code == 0
    for word in ("rlkd", "fakd", "glue_enc_tiny", "stsb", "minilm-l6-2l", "bert-4l-192"):
        assert word in out


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory, data_root, cache_dir):
    """Every method on a few real SST-2 rows, with the real MiniLM teacher, a few CPU steps."""
    results = tmp_path_factory.mktemp("results")
    runs = [("none", []), ("kd", []), ("rlkd", ["method.allow_small_head=true"]), ("fakd", []), ("fakd", ["student=bert-4l-192"])]
    for method, extra in runs:
        code = main(["run", "suite=glue_enc_tiny", f"method={method}", f"data_dir={data_root}", f"results_dir={results}",
                     f"cache_dir={cache_dir}", *extra])
        assert code == 0
    return as_committed(results)


def test_end_to_end_records_are_complete_and_valid(tiny_results):
    records = [json.loads(p.read_text()) for p in sorted((tiny_results / "glue_enc_tiny").glob("*.json"))]
    assert sorted(r["method"] for r in records) == ["fakd", "fakd", "kd", "none", "rlkd"]
    for r in records:
        assert all(k in r for k in REQUIRED)
        assert r["status"] == "complete"
        assert 0.0 <= r["metrics"]["sst2"]["accuracy"] <= 100.0
        assert 0.0 <= r["teacher_metrics"]["sst2"]["accuracy"] <= 100.0
        assert r["params"]["teacher"] > r["params"]["student"] > 0
        assert r["config"]["train"]["max_steps"] == 4 and len(r["loss_curves"]["sst2"]) == 2
        assert r["data"]["sst2"]["train_rows"] == 48  # 64 rows, 16 held out for the learning curve
        assert set(r["timings"]) >= {"teacher_s", "train_s", "eval_s", "val_s"}
        assert len(r["curves"]["sst2"]["points"]) == 5 and r["trivial"]["sst2"]["majority class"]["accuracy"] > 0
    # the teacher was fine-tuned once, then read from the cache by every later run
    cached = [r["teacher_cache"]["sst2"]["cached"] for r in sorted(records, key=lambda r: r["created_at"])]
    assert cached.count(False) <= 1
    # ... and every record names that one teacher by its weights file's sha256
    fingerprints = {r["teacher_cache"]["sst2"]["weights_sha256"] for r in records}
    assert len(fingerprints) == 1


def test_record_names_the_fine_tuned_teacher_by_its_weights_sha256(tiny_results, cache_dir):
    record = json.loads(next((tiny_results / "glue_enc_tiny").glob("none-*.json")).read_text())
    on_disk = {file_sha256(f) for f in (cache_dir / "teachers").glob("sst2-*/model.safetensors")}
    assert record["teacher_cache"]["sst2"]["weights_sha256"] in on_disk


def test_leaderboard_says_when_its_records_come_from_different_teachers(tiny_results):
    records = [json.loads(p.read_text()) for p in sorted((tiny_results / "glue_enc_tiny").glob("*.json"))]
    same = [r for r in records if r["student"]["name"] == "minilm-l6-2l"]
    assert not any("fine-tuned teacher" in n for n in build_group(group_key(same[0]), same).notes)
    same[0]["teacher_cache"]["sst2"]["weights_sha256"] = "0" * 64  # as if its cache was rebuilt elsewhere
    notes = build_group(group_key(same[0]), same).notes
    note = next(n for n in notes if "more than one fine-tuned teacher" in n)
    groups = sorted([[same[0]["seed"]], sorted({r["seed"] for r in same[1:]})])
    assert "sst2 2 (seeds " + " | ".join(", ".join(map(str, g)) for g in groups) + ")" in note


def test_leaderboard_renders_teacher_and_method_rows(capsys, tiny_results):
    code, out, err = run_cli(capsys, "leaderboard", f"results_dir={tiny_results}")
    assert code == 0
    assert "minilm-l6 → minilm-l6-2l" in out and "minilm-l6 → bert-4l-192" in out
    md = (tiny_results / "leaderboard_all.md").read_text()
    for row in ("| teacher |", "| none |", "| kd |", "| rlkd |", "| fakd |"):
        assert row in md


def test_same_seed_gives_identical_runs(tmp_path, data_root, cache_dir):
    for _ in range(2):
        assert main(["run", "suite=glue_enc_tiny", "method=kd", "seed=3", f"data_dir={data_root}",
                     f"results_dir={tmp_path}", f"cache_dir={cache_dir}"]) == 0
    a, b = [json.loads(p.read_text()) for p in sorted((tmp_path / "glue_enc_tiny").glob("*.json"))]
    assert a["loss_curves"] == b["loss_curves"] and a["metrics"] == b["metrics"]


def test_a_local_model_folder_works_as_student(tmp_path, data_root, cache_dir):
    student = tiny_model_dir(tmp_path / "tiny-student", 30522)
    results = tmp_path / "r"
    assert main(["run", "suite=glue_enc_tiny", "method=kd", f"student={student}", f"data_dir={data_root}",
                 f"results_dir={results}", f"cache_dir={cache_dir}"]) == 0
    (record,) = [json.loads(p.read_text()) for p in (results / "glue_enc_tiny").glob("*.json")]
    assert record["student"]["source"] == str(student) and len(record["student"]["weights_sha256"]) == 64
    assert record["params"]["student"] < 1_000_000


def test_help_lists_every_suite_file_and_the_keys_of_the_run(capsys, tmp_path, monkeypatch):
    from kdbench.config import suite_names

    (tmp_path / "my_suite.toml").write_text('kind = "glue"\n')
    monkeypatch.setenv("KDBENCH_SUITES_DIR", str(tmp_path))  # a user's own suite folder counts too
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    names = suite_names()
    assert "my_suite" in names and len(names) > 20
    suites_line = out.split("suites: ", 1)[1].split(" (`kdbench ls suites`", 1)[0]
    assert suites_line.split(", ") == names
    for key in ("save_student=", "log_with=", "push_to_hub=", "strict="):
        assert key in out


def test_a_users_runs_go_where_git_does_not_look(tmp_path):
    """The default results_dir is runs/, which git ignores in this checkout; the reference results/ is tracked."""
    import subprocess

    from kdbench.config import DEFAULT_RESULTS_DIR, resolve
    from tests.conftest import REPO

    assert resolve({"suite": "glue_tiny"}).results_dir == DEFAULT_RESULTS_DIR == "runs"
    ignored = lambda path: subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0  # noqa: E731
    if subprocess.run(["git", "rev-parse"], cwd=REPO, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    for path in ("runs/glue/kd-x.json", "runs/leaderboard_glue.md", "runs/glue/students/kd-x/sst2/model.safetensors",
                 "runs/STUDY.md", "results/glue/students/kd-x/sst2/model.safetensors", "results/glue/trackers/x/e"):
        assert ignored(path), path
    assert not ignored("results/glue/kd-x.json") and not ignored("results/leaderboard_glue.md")
