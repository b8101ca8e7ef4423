"""`kdbench sweep`, `kdbench leaderboard` (all formats) and the `kdbench check` gate, end to end on real SST-2 rows."""

import csv
import json
import shutil

import pytest

from kdbench.cli import main
from tests.conftest import as_committed


@pytest.fixture(scope="module")
def swept(tmp_path_factory, data_root, cache_dir):
    results = tmp_path_factory.mktemp("sweep")
    args = ["sweep", "suite=glue_enc_tiny", "methods=[none,kd,rlkd]", "seeds=[0,1]",
            "method.allow_small_head=true", f"data_dir={data_root}",
            f"results_dir={results}", f"cache_dir={cache_dir}"]
    logs = []
    from kdbench import sweep as sweep_module

    summary = sweep_module.sweep(dict(a.split("=", 1) for a in args[1:]), log=logs.append)
    return as_committed(results), summary, logs, args


def test_sweep_runs_the_grid_once_with_one_teacher(swept):
    results, summary, logs, _ = swept
    assert [c["cell"] for c in summary["ran"]] == ["none seed=0", "none seed=1", "kd seed=0", "kd seed=1",
                                                   "rlkd seed=0", "rlkd seed=1"]
    assert sum("teacher reused from memory" in line for line in logs) == 5  # loaded once, reused by 5 cells
    records = [json.loads(p.read_text()) for p in (results / "glue_enc_tiny").glob("*.json")]
    assert len(records) == 6 and all((results / "glue_enc_tiny" / r["examples_file"]).is_file() for r in records)
    assert all({"agree@1", "ece", "kl_teacher"} <= set(r["diagnostics"]["sst2"]) for r in records)


def test_rerunning_a_sweep_skips_recorded_cells(swept, capsys):
    results, _, _, args = swept
    assert main(args) == 0
    assert "0 cells ran, 6 skipped" in capsys.readouterr().out
    assert len(list((results / "glue_enc_tiny").glob("*.json"))) == 6


def test_sweep_refuses_a_param_no_method_takes(capsys):
    assert main(["sweep", "suite=glue_enc_tiny", "methods=[none,kd]", "method.k=2"]) == 2
    assert "none of the sweep's methods" in capsys.readouterr().err


def test_sweep_takes_lists_not_single_method(capsys):
    assert main(["sweep", "suite=glue_enc_tiny", "method=kd"]) == 2
    assert "methods=[kd]" in capsys.readouterr().err


def test_leaderboard_writes_every_format(swept, capsys, tmp_path):
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    (results / "glue_enc_tiny" / "broken.json").write_text("{not json")
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    out, err = capsys.readouterr()
    assert "teacher" in out and "(n=2)" in out and "Δ vs kd" in out and "(n<3)" in out
    assert "broken.json: unreadable" in err
    md = (results / "leaderboard_all.md").read_text()
    assert "| rlkd |" in md and " ± " in md and "left out:" in md
    rows = list(csv.DictReader((results / "leaderboard_all.csv").open()))
    kd = [r for r in rows if r["method"] == "kd" and r["metric"] == "accuracy"]
    # two seeds: the difference is shown, but no interval and no p-value
    assert len(kd) == 1 and kd[0]["n"] == "2" and kd[0]["delta_vs_none"] != "" and kd[0]["p_vs_none"] == ""
    assert "no test (fewer than 3 seeds (n=2 vs 2))" in md
    html = (results / "leaderboard_all.html").read_text()
    assert "<table" in html and "http" not in html.replace("http-equiv", "")
    for name in ("leaderboard_all_pareto_0.png", "leaderboard_all_tasks_0.png", "leaderboard_all_curves_0.png"):
        assert (results / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| trivial: majority class |" in md
    assert any(r["method"] == "trivial: majority class" for r in rows)


def test_leaderboard_marks_still_improving_runs_and_students_at_the_trivial_baseline(swept, capsys, tmp_path):
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    for path in (results / "glue_enc_tiny").glob("kd-*.json"):
        record = json.loads(path.read_text())
        if path.name == max(p.name for p in (results / "glue_enc_tiny").glob("kd-*")):  # its curve still falls
            points = record["curves"]["sst2"]["points"]
            points[-1][1] = 0.5 * min(p[1] for p in points)
        else:  # the leaderboard judges the points by the rule in force, not a stored verdict
            for point in record["curves"]["sst2"]["points"][1:]:
                point[1], point[2] = 1.0, {"accuracy": 50.0}
            record["curves"]["sst2"]["converged"] = False
        record["trivial"]["sst2"]["majority class"]["accuracy"] = 99.0  # no student is clearly above this
        record["budget_bound"] = "plateau needs ~5,000 steps (extrapolated)"
        path.write_text(json.dumps(record))
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    out = capsys.readouterr().out
    kd_line = next(line for line in out.splitlines() if line.startswith("kd "))
    assert "▽" in kd_line and "↗ 1/2 budget-bound" in kd_line
    assert "still improving at their last step" in out and "not clearly above the best trivial baseline" in out
    assert "budget-bound: plateau needs ~5,000 steps (extrapolated)" in out


def test_runs_that_did_not_learn_are_marked_and_the_study_does_not_judge_them(swept, capsys, tmp_path):
    """A student whose validation loss never leaves its step-0 value (the minillm suite's ABKD students) has
    "converged" by the rule, yet did not learn: the leaderboard marks its cells ✗ k/n and the study shows
    its Δ but gives no verdict on it."""
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    _third_seed(results, lambda method, seed, refs: refs)
    for path in (results / "glue_enc_tiny").glob("*.json"):
        record = json.loads(path.read_text())
        stuck = path.name.startswith("kd-") and record["seed"] == 0
        for i, point in enumerate(record["curves"]["sst2"]["points"]):
            point[1], point[2] = 2.0 if i == 0 and not stuck else 1.0, {"accuracy": 50.0}
        path.write_text(json.dumps(record))
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    out = capsys.readouterr().out
    assert "✗ 1/3" in next(line for line in out.splitlines() if line.startswith("kd "))
    assert not any("✗" in line for line in out.splitlines() if line.split(" ")[0] in ("none", "rlkd"))
    assert "k of the n runs did not learn (learned when the best validation loss after step 0" in out
    study_file, report = tmp_path / "study.toml", tmp_path / "STUDY.md"
    study_file.write_text(STUDY)
    assert main(["study", f"file={study_file}", f"results_dir={results}", f"out={report}"]) == 0
    row = report.read_text().split("| kd-beats-none |")[1].split("\n")[0]
    assert "**not measured**" in row and " / 3 |" in row and "[" in row  # the Δ and its interval stay shown
    assert "(1 of the runs of kd did not learn)" in report.read_text()
    assert "**supported**" in report.read_text().split("| rlkd-equals-none")[1].split("\n")[0]
    claims = json.loads(report.with_suffix(".json").read_text())["claims"]
    assert next(c for c in claims if c["id"] == "kd-beats-none")["runs_not_learned"] == {"kd": 1}


def test_a_budget_bound_suite_marks_every_cell_even_runs_that_pass_the_rule(swept, capsys, tmp_path, monkeypatch):
    """A suite's budget-bound statement covers its converged-looking runs too (a learning rate decayed to 0
    flattens any curve), and a statement the suite file gained after the records ran covers them while the
    suite's version holds; records of another version are left unmarked."""
    from kdbench.config import SuiteInfo

    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    for path in (results / "glue_enc_tiny").glob("*.json"):  # every curve flat: each run passes the rule
        record = json.loads(path.read_text())
        for i, point in enumerate(record["curves"]["sst2"]["points"]):  # learned by step 1, flat since
            point[1], point[2] = 2.0 if i == 0 else 1.0, {"accuracy": 50.0}
        path.write_text(json.dumps(record))
    own = SuiteInfo.load("glue_enc_tiny")
    statement = "still falling at 10x the budget (calibration)"
    monkeypatch.setattr(SuiteInfo, "load", classmethod(lambda cls, name: SuiteInfo.of(name, {
        "kind": own.kind, "version": own.version, "budget_bound": statement})))
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.split(" ")[0] in ("none", "kd", "rlkd")]
    assert len(lines) == 3 and all("budget-bound" in line and "↗" not in line for line in lines)
    assert f"budget-bound: {statement}" in out

    monkeypatch.setattr(SuiteInfo, "load", classmethod(lambda cls, name: SuiteInfo.of(name, {
        "kind": own.kind, "version": f"{own.version}-next", "budget_bound": statement})))
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    assert "budget-bound" not in capsys.readouterr().out


def test_a_leaderboard_group_reads_its_suite_file_once(swept, monkeypatch):
    """The caption, the published reference and the budget-bound statement come from one read of the suite file."""
    import kdbench.config
    from kdbench.leaderboard import collect

    reads = []
    real = kdbench.config.load_suite_file
    monkeypatch.setattr(kdbench.config, "load_suite_file", lambda name: reads.append(name) or real(name))
    groups, _ = collect(swept[0])
    assert groups and len(reads) == len(groups)


def test_records_that_read_a_top_k_teacher_get_their_own_table(swept, capsys, tmp_path):
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    for path in (results / "glue_enc_tiny").glob("kd-*.json"):
        record = json.loads(path.read_text())
        record["teacher_outputs"]["sst2"].update(used=True, kind="topk", k=64)
        path.write_text(json.dumps(record))
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    out = capsys.readouterr().out
    assert out.count("glue_enc_tiny v1:") == 2 and "teacher outputs topk(64)" in out


def test_leaderboard_never_mixes_suite_versions(swept, capsys, tmp_path):
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    path = next((results / "glue_enc_tiny").glob("kd-*.json"))
    record = json.loads(path.read_text())
    record["suite_version"] = "2"
    path.write_text(json.dumps(record))
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    out = capsys.readouterr().out
    assert "glue_enc_tiny v1:" in out and "glue_enc_tiny v2:" in out


def _third_seed(results, predictions_of):
    """Give every method a seed-2 run (a copy of its seed-1 run) and set each run's eval predictions. The tiny
    sweep's students barely move in their few steps; the hand-set predictions are a trained student's, so
    each curve's step 0 is raised to match (kdbench.convergence.learned)."""
    folder = results / "glue_enc_tiny"
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if record["seed"] == 1:
            copy = dict(record, seed=2, run_id=record["run_id"] + "-s2", examples_file=f"examples/{path.stem}-s2.json",
                        config=dict(record["config"], seed=2), created_at=record["created_at"].replace("2026", "2027"))
            shutil.copy(folder / record["examples_file"], folder / copy["examples_file"])
            (folder / f"{path.stem}-s2.json").write_text(json.dumps(copy))
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        examples_path = folder / record["examples_file"]
        examples = json.loads(examples_path.read_text())
        split = examples["sst2"]["dev"]
        split["predictions"] = {"model": predictions_of(record["method"], record["seed"], split["references"])}
        examples_path.write_text(json.dumps(examples))
        points = record["curves"]["sst2"]["points"]
        points[0][1] = 2 * max(p[1] for p in points)
        path.write_text(json.dumps(record))


def test_comparisons_are_seed_aware_paired_and_holm_adjusted(swept, capsys, tmp_path):
    from kdbench.leaderboard import collect
    from kdbench.stats import Comparison

    results = tmp_path / "r"
    shutil.copytree(swept[0], results)

    def predictions_of(method, seed, refs):  # kd right on every example; none wrong on a seed-dependent share
        wrong = {"kd": 0, "none": 20 + 10 * seed, "rlkd": 22 + 10 * seed}[method]
        return [1 - y if i < wrong else y for i, y in enumerate(refs)]

    _third_seed(results, predictions_of)
    (group,), _ = collect(results, "glue_enc_tiny")
    rows = {row.method: row for row in group.rows}
    n = len(json.loads(next((results / "glue_enc_tiny" / "examples").glob("*.json")).read_text())["sst2"]["dev"]["references"])
    kd_vs_none = rows["kd"].comparisons["none"]["sst2"]
    assert isinstance(kd_vs_none, Comparison) and kd_vs_none.paired and kd_vs_none.n == (3, 3)
    assert kd_vs_none.delta == pytest.approx(100.0 * 30 / n)  # none is wrong on 20, 30, 40 examples: 30 on average
    # 4 pairs (kd–none both ways, rlkd vs each) × (sst2, avg) = 8 tests: B + 1 ≥ 10·8/0.05, so B = 2,000
    assert group.resamples == 2000
    assert kd_vs_none.low > 0 and kd_vs_none.p == pytest.approx(2 / 2001)  # never below 2/(B+1)
    assert kd_vs_none.p_holm >= kd_vs_none.p and kd_vs_none.sd > 0
    # rlkd vs none: 2 more wrong examples at every seed: a small, consistent difference
    small = rows["rlkd"].comparisons["none"]["sst2"]
    assert small.delta == pytest.approx(-100.0 * 2 / n) and small.high < 0.5 and small.low < small.delta < small.high
    tests = [c for row in group.rows for cs in row.comparisons.values() for c in cs.values()
             if isinstance(c, Comparison) and c.p is not None]
    assert len(tests) == 8  # (none, rlkd) vs kd, (kd, rlkd) vs none; sst2 and the average each
    assert max(c.p_holm for c in tests) <= 1.0 and all(c.p_holm >= c.p for c in tests)
    assert set(group.mde) == {"sst2", "avg"} and group.mde["sst2"] > 0
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    out = capsys.readouterr().out
    assert "Holm over this table's 8 tests" in out and "Minimum detectable difference" in out
    assert "B = 2,000, chosen from the table's size, so p ≥ 2/2,001" in out and "p 0.0010, Holm" in out


STUDY = """seeds = [0, 1, 2]

[[claim]]
id = "kd-beats-none"
source = "hand-made"
statement = "kd is right more often than none"
suite = "glue_enc_tiny"
task = "sst2"
metric = "accuracy"
method = "kd"
reference = "none"
direction = "higher"

[[claim]]
id = "rlkd-equals-none"
source = "hand-made"
statement = "rlkd is as good as none"
suite = "glue_enc_tiny"
task = "avg"
metric = "score"
method = "rlkd"
reference = "none"
direction = "equal"
margin = 0.05
"""


def test_study_computes_verdicts_from_the_records_and_refuses_mixed_suite_versions(swept, capsys, tmp_path):
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    _third_seed(results, lambda method, seed, refs: [1 - y if i < {"kd": 0, "none": 30, "rlkd": 30}[method] else y
                                                    for i, y in enumerate(refs)])
    for path in (results / "glue_enc_tiny").glob("*.json"):  # a budget-bound suite whose runs all pass the rule
        record = json.loads(path.read_text())
        for i, point in enumerate(record["curves"]["sst2"]["points"]):  # learned by step 1, flat since
            point[1], point[2] = 2.0 if i == 0 else 1.0, {"accuracy": 50.0}
        record["budget_bound"] = "still falling at 10x the budget" if path.name.startswith("none-") else None
        path.write_text(json.dumps(record))
    study_file, out = tmp_path / "study.toml", tmp_path / "STUDY.md"
    study_file.write_text(STUDY)
    assert main(["study", f"file={study_file}", f"results_dir={results}", f"out={out}"]) == 0
    text = out.read_text()
    assert "  - the suite is budget-bound: still falling at 10x the budget." in text.split("**kd-beats-none**")[1]
    assert "| kd-beats-none | glue_enc_tiny / sst2 / accuracy: kd vs none (higher) | 3 / 3 |" in text
    assert "**supported**" in text.split("kd-beats-none")[1].split("\n")[0]
    assert "**supported**" in text.split("| rlkd-equals-none")[1].split("\n")[0]  # the same predictions: Δ ≡ 0
    assert "Cost: the 9 runs behind these verdicts" in text
    assert "B = 1,000, chosen from the number of claims" in text  # 2 claims: the minimum B
    data = json.loads(out.with_suffix(".json").read_text())  # the same verdicts as data
    (kd,) = [c for c in data["claims"] if c["id"] == "kd-beats-none"]
    assert kd["verdict"] == "supported" and kd["seeds"] == [3, 3] and kd["ci95"][0] > 0 and kd["p_holm"] >= kd["p"]
    assert kd["mde"] > 0 and kd["delta"] == pytest.approx(kd["means"][0] - kd["means"][1])
    capsys.readouterr()
    path = next((results / "glue_enc_tiny").glob("kd-*.json"))  # one kd record from another suite version
    record = json.loads(path.read_text())
    record["suite_version"] = "0"
    path.write_text(json.dumps(record))
    out.unlink()
    assert main(["study", f"file={study_file}", f"results_dir={results}", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert f"{study_file}:3: claim 'kd-beats-none'" in err and "span suite versions ['0', '1']" in err
    assert not out.exists()


def test_check_fails_when_a_committed_verdict_flips(swept, capsys, tmp_path):
    results, baselines = tmp_path / "r", tmp_path / "baselines"
    shutil.copytree(swept[0], results)
    _third_seed(results, lambda method, seed, refs: [1 - y if i < {"kd": 0, "none": 30, "rlkd": 30}[method] else y
                                                    for i, y in enumerate(refs)])
    study_file = tmp_path / "ci.toml"
    study_file.write_text(STUDY)
    args = [f"results_dir={results}", f"baselines_dir={baselines}", f"study={study_file}"]
    assert main(["check", *args, "record=true"]) == 0
    assert json.loads((baselines / "study-ci.json").read_text())["verdicts"] == {
        "kd-beats-none": "supported", "rlkd-equals-none": "supported"}
    capsys.readouterr()
    assert main(["check", *args]) == 0
    assert "verdict kd-beats-none: supported" in capsys.readouterr().out
    _third_seed(results, lambda method, seed, refs: [1 - y if i < {"kd": 40, "none": 30, "rlkd": 30}[method] else y
                                                    for i, y in enumerate(refs)])  # kd now worse than none
    assert main(["check", *args, "floor=100"]) == 1  # metric tolerances wide open: only the verdict fails
    out = capsys.readouterr().out
    assert "FAIL: the verdict of kd-beats-none flipped: committed 'supported', measured 'contradicted'" in out
    (baselines / "study-ci.json").unlink()
    assert main(["check", *args, "floor=100"]) == 1
    assert "no readable verdict baseline" in capsys.readouterr().out


def test_each_student_counts_once_and_the_caption_says_so(swept, capsys, tmp_path):
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    folder = results / "glue_enc_tiny"
    original = next(folder.glob("kd-*.json"))
    record = json.loads(original.read_text())
    for i in (1, 2):  # two repeats of one (configuration, seed): the newest counts, the others are set aside
        repeat = dict(record, run_id=f"{record['run_id']}-repeat{i}", created_at=f"2999-01-0{i}T00:00:00Z")
        repeat["metrics"] = {"sst2": {"accuracy": 10.0 * i}}
        (folder / f"kd-repeat{i}.json").write_text(json.dumps(repeat))
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    out = capsys.readouterr().out
    kd_line = next(line for line in out.splitlines() if line.startswith("kd "))
    assert "(n=2)" in kd_line  # still two seeds, not four
    assert "2 repeated runs of one configuration and seed set aside" in out
    rows = list(csv.DictReader((results / "leaderboard_all.csv").open()))
    kd = next(r for r in rows if r["method"] == "kd" and r["metric"] == "accuracy")
    other = json.loads(next(p for p in folder.glob("kd-*.json") if p != original and "repeat" not in p.name).read_text())
    assert float(kd["mean"]) == pytest.approx((20.0 + other["metrics"]["sst2"]["accuracy"]) / 2, abs=0.05)


def test_a_repeat_from_another_data_path_counts_once_and_a_variant_gets_its_own_row(swept, capsys, tmp_path):
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    folder = results / "glue_enc_tiny"
    record = json.loads(next(folder.glob("kd-*.json")).read_text())
    moved = dict(record, run_id=record["run_id"] + "-moved", created_at="2999-01-01T00:00:00Z",
                 config={**record["config"], "data_dir": "/elsewhere"})
    variant = dict(record, run_id=record["run_id"] + "-alpha", created_at="2999-01-02T00:00:00Z",
                   config={**record["config"], "method_params": {**record["config"]["method_params"], "alpha": 0.9}})
    (folder / "kd-moved.json").write_text(json.dumps(moved))
    (folder / "kd-alpha.json").write_text(json.dumps(variant))
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    out = capsys.readouterr().out
    assert "1 repeated run of one configuration and seed set aside" in out
    # the suite's own kd (alpha 0.5) keeps the name, so the table's "vs kd" still means it
    assert any(line.startswith("kd ") and "(n=2)" in line for line in out.splitlines()), out
    assert any(line.startswith("kd[alpha=0.9] ") and "(n=1)" in line for line in out.splitlines()), out


def test_dirty_records_are_left_out_unless_allowed_and_the_caption_counts_commits(swept, capsys, tmp_path):
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    path = next((results / "glue_enc_tiny").glob("kd-*.json"))
    record = json.loads(path.read_text())
    record["git_commit"] = {"sha": "f" * 40, "dirty": True}
    path.write_text(json.dumps(record))
    assert main(["leaderboard", f"results_dir={results}"]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: ran from a tree with uncommitted changes" in err and "allow_dirty=true" in err
    assert "(n=1)" in next(line for line in out.splitlines() if line.startswith("kd ")) and "Code: 1 commit." in out
    assert main(["leaderboard", f"results_dir={results}", "allow_dirty=true"]) == 0
    out = capsys.readouterr().out
    assert "Code: 2 commits, 1 run from a tree with uncommitted changes (allow_dirty=true)" in out
    assert main(["leaderboard", f"results_dir={results}", "allow_dirty=maybe"]) == 2


def _copy(swept, tmp_path):
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    return results, tmp_path / "baselines"


def test_check_fails_loudly_without_a_baseline_when_strict_and_reports_not_gated_otherwise(swept, capsys, tmp_path):
    results, baselines = _copy(swept, tmp_path)
    assert main(["check", f"results_dir={results}", f"baselines_dir={baselines}", "strict=true"]) == 1
    assert "no baseline" in capsys.readouterr().out
    # a user's exploratory runs: nothing to compare against is no failure, and says so
    assert main(["check", f"results_dir={results}", f"baselines_dir={baselines}"]) == 0
    out = capsys.readouterr().out
    assert "not gated:" in out and "no baseline" in out and "strict=true" in out


def test_check_passes_on_its_own_baseline_and_fails_on_a_regression(swept, capsys, tmp_path):
    results, baselines = _copy(swept, tmp_path)
    assert main(["check", f"results_dir={results}", f"baselines_dir={baselines}", "record=true"]) == 0
    assert main(["check", f"results_dir={results}", f"baselines_dir={baselines}"]) == 0
    assert "check passed" in capsys.readouterr().out
    # a newer kd seed-0 record, 40 points worse: the newest result per seed is what counts
    path = min((results / "glue_enc_tiny").glob("kd-*.json"))
    record = json.loads(path.read_text())
    assert record["seed"] in (0, 1)
    record["metrics"]["sst2"]["accuracy"] -= 40.0
    record["created_at"] = "2999-01-01T00:00:00Z"
    (results / "glue_enc_tiny" / "kd-regressed.json").write_text(json.dumps(record))
    assert main(["check", f"results_dir={results}", f"baselines_dir={baselines}"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("kd ") and " accuracy " in x)
    assert "REGRESSED" in line and "-20.000" in line  # mean over the 2 seeds drops by 40 / 2
    assert "check FAILED" in out


def test_check_reports_and_skips_torn_invalid_and_unfinished_records(swept, capsys, tmp_path):
    results, baselines = _copy(swept, tmp_path)
    assert main(["check", f"results_dir={results}", f"baselines_dir={baselines}", "record=true"]) == 0
    capsys.readouterr()
    folder = results / "glue_enc_tiny"
    good = json.loads(min(folder.glob("kd-*.json")).read_text())
    (folder / "torn.json").write_text(json.dumps(good)[:100])  # cut mid-write by a crash elsewhere
    (folder / "alien.json").write_text('{"hello": "world"}')
    (folder / "killed.json").write_text(json.dumps({**good, "status": "running", "metrics": {}}))
    assert main(["check", f"results_dir={results}", f"baselines_dir={baselines}"]) == 0
    out, err = capsys.readouterr()
    assert "torn.json: unreadable" in err and "alien.json: not a kdbench record" in err
    assert "killed.json: status 'running'" in err and "check passed" in out


def test_check_fails_when_a_baselined_method_has_no_result(swept, capsys, tmp_path):
    results, baselines = _copy(swept, tmp_path)
    assert main(["check", f"results_dir={results}", f"baselines_dir={baselines}", "record=true"]) == 0
    for path in (results / "glue_enc_tiny").glob("rlkd-*.json"):
        path.unlink()
    assert main(["check", f"results_dir={results}", f"baselines_dir={baselines}"]) == 1
    assert "baseline has rlkd" in capsys.readouterr().out


def test_tolerance_rule():
    from kdbench.check import tolerance

    assert tolerance("accuracy", {"mean": 80.0, "std": 0.1}) == 1.0  # the floor
    assert tolerance("accuracy", {"mean": 80.0, "std": 2.0}) == 6.0  # 3 x std
    assert tolerance("kl_teacher", {"mean": 0.2, "std": 0.0}) == pytest.approx(0.01)  # 5% of the baseline
    assert tolerance("perplexity", {"mean": 100.0, "std": 4.0}) == 12.0


def test_records_of_an_older_schema_do_not_count_as_done(swept, tmp_path):
    from kdbench.sweep import done_configs

    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    assert len(done_configs(results, "glue_enc_tiny")) == 6
    for path in (results / "glue_enc_tiny").glob("kd-*.json"):
        record = json.loads(path.read_text())
        record["schema_version"] = 1  # before per-example outputs existed
        path.write_text(json.dumps(record))
    assert len(done_configs(results, "glue_enc_tiny")) == 4


def test_a_gpu_record_does_not_count_as_done_for_a_cpu_sweep(swept, tmp_path):
    """device=auto trains in fp32 here and under bf16 on a GPU: another student, so the cell runs again."""
    from kdbench.runner import mixed_precision_for
    from kdbench.sweep import done_configs

    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    assert {precision for _, precision in done_configs(results, "glue_enc_tiny")} == {mixed_precision_for("cpu")}
    for path in (results / "glue_enc_tiny").glob("kd-*.json"):
        record = json.loads(path.read_text())
        record["device"] = {**record["device"], "type": "cuda", "mixed_precision": "bf16"}
        path.write_text(json.dumps(record))
    assert sum(precision == "no" for _, precision in done_configs(results, "glue_enc_tiny")) == 4


def test_a_claim_may_name_a_variant_row_and_run_refuses_it(swept, capsys, tmp_path):
    """Records of one method that differ in a key are rows `kd[alpha=...]`; a claim names such a row."""
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    _third_seed(results, lambda method, seed, refs: [1 - y if i < {"kd": 0, "none": 30, "rlkd": 30}[method] else y
                                                    for i, y in enumerate(refs)])
    folder = results / "glue_enc_tiny"
    for path in sorted(folder.glob("kd-*.json")):  # the same students, recorded as a second variant of kd (alpha 0.25)
        record = json.loads(path.read_text())
        params = dict(record["config"]["method_params"], alpha=0.25)
        copy = dict(record, run_id=record["run_id"] + "-a25", method_params=params,
                    config=dict(record["config"], method_params=params))
        (folder / f"{path.stem}-a25.json").write_text(json.dumps(copy))
    study_file, out = tmp_path / "study.toml", tmp_path / "STUDY.md"
    study_file.write_text(STUDY.replace('method = "kd"', 'method = "kd[alpha=0.25]"', 1))
    assert main(["study", f"file={study_file}", f"results_dir={results}", f"out={out}"]) == 0
    line = out.read_text().split("| kd-beats-none")[1].split("\n")[0]
    assert "kd[alpha=0.25] vs none (higher) | 3 / 3 |" in line and "**supported**" in line
    study_file.write_text(STUDY)  # plain kd still names the suite's own kd (alpha 0.5), beside the variant
    assert main(["study", f"file={study_file}", f"results_dir={results}", f"out={out}"]) == 0
    line = out.read_text().split("| kd-beats-none")[1].split("\n")[0]
    assert "accuracy: kd vs none (higher) | 3 / 3 |" in line and line.endswith("| **supported** |")
    capsys.readouterr()
    study_file.write_text(STUDY.replace('method = "kd"', 'method = "kd[alpha=0.25]"', 1))
    assert main(["study", f"file={study_file}", f"results_dir={results}", f"out={tmp_path / 'x.md'}", "run=true"]) == 2
    err = capsys.readouterr().err
    assert "names a variant row" in err and "method.align=bytes" in err and not (tmp_path / "x.md").exists()


def test_status_says_per_task_and_method_whether_the_students_are_trained(swept, capsys, tmp_path):
    results = tmp_path / "r"
    shutil.copytree(swept[0], results)
    stuck = min((results / "glue_enc_tiny").glob("kd-*.json"))  # one kd run never leaves its step 0
    for path in (results / "glue_enc_tiny").glob("*.json"):  # the tiny sweep's 4 steps barely move: set curves
        record = json.loads(path.read_text())
        for i, point in enumerate(record["curves"]["sst2"]["points"]):
            point[1] = 2.0 if i == 0 and path != stuck else 1.0
        path.write_text(json.dumps(record))
    out = tmp_path / "STATUS.md"
    assert main(["status", f"results_dir={results}", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text() + "\n"
    rows = {line.split(" | ")[2]: line.split(" | ") for line in printed.splitlines() if "| sst2 |" in line}
    assert set(rows) == {"none", "kd", "rlkd"}
    records = [json.loads(p.read_text()) for p in (results / "glue_enc_tiny").glob("*.json")]
    teacher = records[0]["teacher_metrics"]["sst2"]["accuracy"]
    for method, cells in rows.items():
        accuracies = [r["metrics"]["sst2"]["accuracy"] for r in records if r["method"] == method]
        student = sum(accuracies) / len(accuracies)
        assert cells[3] == "2" and cells[4] == f"{student:.3g} (accuracy)"
        assert cells[6] == f"{student / teacher:.2f}"  # accuracy: student ÷ teacher
        assert cells[7].startswith("majority class ")
    assert rows["kd"][9] == "1/2" and rows["none"][9] == "2/2" and rows["rlkd"][9] == "2/2"
    assert {cells[13] for cells in rows.values()} == {"current |"}  # the last column
    assert "a score from a student that has not learned is not a result" in printed
    assert main(["status", f"results_dir={results}", "sort=score"]) == 2
    assert "unknown key 'sort' for status" in capsys.readouterr().err


def test_status_marks_the_rows_of_an_older_suite_version_as_superseded():
    from kdbench.config import load_suite_file
    from kdbench.training_status import version_state

    now = str(load_suite_file("bleu")["version"])
    assert version_state("bleu", now) == "current"
    assert version_state("bleu", "1") == f"superseded (now v{now})"
    assert version_state("no_such_suite", "1") == "–"


def test_status_gives_wall_seconds_per_device_where_gpu_and_cpu_seeds_share_a_row():
    from kdbench.training_status import wall_seconds

    def run(device, train_s):
        return {"device": {"type": device} if device else None, "timings": {"train_s": train_s}}

    assert wall_seconds([run("cpu", 100.0), run(None, 300.0)]) == "200"  # no device field: a CPU record
    assert wall_seconds([run("cpu", 2777.0), run("cuda", 40.0), run("cuda:0", 50.0)]) == "cpu 2,777 (n=1) · cuda 45 (n=2)"
    assert wall_seconds([run("cuda", 94.0)]) == "cuda 94 (n=1)"


def test_status_ratios_point_the_same_way_for_every_metric():
    from kdbench.training_status import headline, ratio_to_teacher

    assert ratio_to_teacher(80.0, 90.0, "accuracy") == pytest.approx(80 / 90)
    assert ratio_to_teacher(120.0, 24.0, "perplexity") == pytest.approx(0.2)  # 5x the teacher's perplexity
    assert ratio_to_teacher(60.0, 50.0, "cer") == pytest.approx(50 / 60)
    assert headline(["accuracy", "f1"]) == ["accuracy", "f1"]  # 0-100 scores average
    assert headline(["loss", "perplexity", "cer"]) == ["loss"]  # these do not: the first alone
    assert headline(["bleu", "cer"]) == ["bleu"]


def test_a_single_seed_above_the_baseline_is_unsettled_in_the_leaderboard_and_the_status():
    from kdbench.leaderboard import MethodRow, _flag_trivial
    from kdbench.leaderboard_render import _marked
    from kdbench.training_status import above_trivial

    trivial = {"majority class": {"sst2": {"accuracy": 49.5}}}

    def flagged(summary):
        row = MethodRow(method="kd", runs=[{}] * summary[2], tasks={"sst2": {"accuracy": summary}}, average=None)
        _flag_trivial(row, trivial, ["sst2"])
        return row

    one = flagged((50.0, None, 1))  # 0.500 vs a majority class of 0.495, one run: no interval
    assert one.one_seed_above == {"sst2"} and not one.below_trivial
    assert above_trivial("sst2", one) == "? (1 seed)" and _marked(("50.0", 50.0), one, "sst2")[0] == "50.0 ?"
    clear = flagged((50.0, 0.3, 3))
    assert not clear.one_seed_above and not clear.below_trivial and above_trivial("sst2", clear) == "yes"
    reaches = flagged((50.0, 0.6, 3))
    assert reaches.below_trivial == {"sst2"} and above_trivial("sst2", reaches) == "▽ no"
    below = flagged((49.0, None, 1))  # one seed at or below the baseline is ▽, not ?
    assert below.below_trivial == {"sst2"} and not below.one_seed_above
    assert _marked(("49.0", 49.0), below, "sst2")[0] == "49.0 ▽"


def test_the_evaluation_sets_standard_error_widens_the_comparison_with_a_trivial_baseline():
    """Two seeds that both score 0.500 on 200 SST-2 documents have a seed interval of width 0; lm-eval's
    acc_stderr (0.0354) is the error every seed shares, so 0.500 is within it of a 0.495 majority class."""
    from kdbench.leaderboard import MethodRow, _flag_trivial

    trivial = {"majority class": {"sst2": {"acc": 0.495}}}

    def flagged(score, stderr):
        runs = [{"metrics": {"sst2": {"acc": score, "acc_stderr": stderr}}}] * 2
        row = MethodRow(method="none", runs=runs, tasks={"sst2": {"acc": (score, 0.0, 2)}}, average=None)
        _flag_trivial(row, trivial, ["sst2"])
        return row

    assert flagged(0.500, 0.0354).below_trivial == {"sst2"}  # 0.005 above, 1.96 × 0.0354 = 0.069 wide
    assert not flagged(0.600, 0.0346).below_trivial  # 0.105 above: clear of 0.068
    no_stderr = MethodRow(method="none", runs=[{"metrics": {"sst2": {"acc": 0.5}}}] * 2,
                          tasks={"sst2": {"acc": (0.500, 0.0, 2)}}, average=None)
    _flag_trivial(no_stderr, trivial, ["sst2"])
    assert not no_stderr.below_trivial  # no recorded error: the seed interval alone, as before


def test_the_leaderboard_never_averages_cpu_and_gpu_training_seconds():
    from kdbench.leaderboard import MethodRow, _cost
    from kdbench.leaderboard_render import _train_s_cell
    from types import SimpleNamespace

    from kdbench.plots import training_seconds_axis

    def run(device, train_s, examples_per_s):
        return {"device": {"type": device} if device else None, "params": {"student": 10},
                "timings": {"train_s": train_s}, "throughput": {"t": {"train_examples_per_s": examples_per_s}}}

    mixed = MethodRow("kd", [run(None, 3000.0, 2.0), run("cuda:0", 60.0, 100.0), run("cuda", 80.0, 80.0)], {}, None)
    _cost(mixed, 20)
    assert (mixed.train_device, mixed.train_s, mixed.examples_per_s) == ("cpu", 3000.0, 2.0)  # the CPU run's alone
    assert mixed.train_s_by_device == {"cpu": (3000.0, 1), "cuda": (70.0, 2)}
    assert _train_s_cell(mixed) == ("cpu 3000 (n=1) · cuda 70 (n=2)", 3000.0)
    gpu = MethodRow("rlkd", [run("cuda", 94.0, 90.0)], {}, None)
    _cost(gpu, 20)
    assert (gpu.train_device, gpu.train_s) == ("cuda", 94.0) and _train_s_cell(gpu) == ("cuda 94 (n=1)", 94.0)
    cpu = MethodRow("none", [run("cpu", 100.0, 3.0), run(None, 300.0, 1.0)], {}, None)
    _cost(cpu, 20)
    assert _train_s_cell(cpu) == ("200", 200.0) and cpu.examples_per_s == 2.0
    group = SimpleNamespace(rows=[mixed, gpu, cpu])
    assert training_seconds_axis(group) == {"kd": 3000.0, "none": 200.0}  # the GPU-only row sits out
    assert training_seconds_axis(SimpleNamespace(rows=[gpu])) == {"rlkd": 94.0}
