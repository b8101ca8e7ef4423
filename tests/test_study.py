"""`kdbench study`: the study file's validation (one line naming file and line, exit 2, nothing written)
and the verdict rules on hand-made comparisons. The end-to-end study on real records is in
test_sweep_leaderboard_check.py (it shares that module's sweep)."""

import pytest

from kdbench.cli import main
from kdbench.stats import Comparison
from kdbench.study import Claim, _verdict, load_study

GOOD = """seeds = [0, 1, 2]

[[claim]]
id = "a"
source = "paper"
statement = "kd beats none"
suite = "glue_enc_tiny"
task = "sst2"
metric = "accuracy"
method = "kd"
reference = "none"
direction = "higher"

[[claim]]
id = "b"
source = "paper"
statement = "rlkd equals kd"
suite = "glue_enc_tiny"
task = "sst2"
metric = "agree@1"
method = "rlkd"
reference = "kd"
direction = "equal"
margin = 0.02
"""


def test_the_shipped_study_file_is_valid():
    seeds, claims = load_study(__import__("pathlib").Path("studies/published_effects.toml"))
    assert len(seeds) >= 5 and {c.id for c in claims} >= {"rlkd-cr5", "rlkd-ppl", "rlkd-rougeL", "kd-glue-encoder",
                                                            "kd-glue-llm", "fakd-glue", "fakd-glue-encoder"}
    _, on_policy = load_study(__import__("pathlib").Path("studies/onpolicy.toml"))
    assert {c.id for c in on_policy} == {"gkd-onpolicy-char", "distillm-char", "minillm-char"}
    _, cross = load_study(__import__("pathlib").Path("studies/cross_tokenizer.toml"))
    assert [(c.id, c.method, c.reference) for c in cross] == [("uld-index-bleu", "uld", "none"),
                                                           ("uld-bytes-bleu", "uld[align=bytes]", "none"),
                                                           ("bytes-over-index-bleu", "uld[align=bytes]", "uld")]
    _, minillm = load_study(__import__("pathlib").Path("studies/minillm_methods.toml"))
    assert [(c.id, c.method, c.reference) for c in minillm] == [
        ("distillm-dolly", "distillm", "kd"), ("minillm-dolly", "minillm", "kd"),
        ("akl-dolly", "kd[divergence=akl]", "kd"), ("akl-r-dolly", "rlkd[logits_loss=akl]", "kd[divergence=akl]"),
        ("abkd-dolly", "kd[divergence=abkd]", "kd")]


@pytest.mark.parametrize("old, new, message", [
    ('method = "kd"', 'method = "kdd"', "unknown method 'kdd'"),
    ('method = "kd"', 'method = "kdd[alpha=0.25]"', "unknown method 'kdd'"),
    ('suite = "glue_enc_tiny"\ntask = "sst2"\nmetric = "accuracy"', 'suite = "glu"\ntask = "sst2"\nmetric = "accuracy"',
     "unknown suite 'glu'"),
    ('metric = "accuracy"', 'metric = "acuracy"', "unknown metric 'acuracy'"),
    ('direction = "higher"\n', "", "has no direction (one of higher, lower, equal)"),
    ('direction = "higher"', 'direction = "up"', "direction 'up' is not one of"),
    ("margin = 0.02\n", "", "give margin ="),
    ('id = "b"', 'id = "a"', "claim id 'a' is used twice"),
])
def test_a_bad_study_file_is_one_line_naming_file_and_line(tmp_path, capsys, old, new, message):
    path = tmp_path / "study.toml"
    assert old in GOOD
    path.write_text(GOOD.replace(old, new, 1))
    out = tmp_path / "STUDY.md"
    assert main(["study", f"file={path}", f"results_dir={tmp_path}", f"out={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and f"{path}:" in err and "Traceback" not in err
    claim_line = 3 if old in GOOD.split("[[claim]]")[1] else 14  # the [[claim]] header of the claim at fault
    assert f"{path}:{claim_line}:" in err
    assert not out.exists()


def _claim(direction, margin=None):
    return Claim("x", "s", "t", "glue", "sst2", "accuracy", "kd", "none", direction, 1, margin=margin)


def test_verdict_rules_by_hand():
    def c(delta, low, high, p_holm):
        return Comparison(delta, (5, 5), low, high, p_holm, 1.0, True, None, p_holm)

    assert _verdict(_claim("higher"), c(2.0, 1.0, 3.0, 0.01), 50.0)[0] == "supported"
    assert _verdict(_claim("higher"), c(-2.0, -3.0, -1.0, 0.01), 50.0)[0] == "contradicted"
    assert _verdict(_claim("higher"), c(2.0, -1.0, 5.0, 0.20), 50.0)[0] == "inconclusive (underpowered)"
    assert _verdict(_claim("lower"), c(-2.0, -3.0, -1.0, 0.01), 50.0)[0] == "supported"
    # equal within 2% of 50 = ±1.0
    assert _verdict(_claim("equal", 0.02), c(0.1, -0.5, 0.7, 0.6), 50.0)[0] == "supported"
    assert _verdict(_claim("equal", 0.02), c(3.0, 2.0, 4.0, 0.01), 50.0)[0] == "contradicted"
    assert _verdict(_claim("equal", 0.02), c(0.5, -0.8, 1.8, 0.4), 50.0)[0] == "inconclusive (underpowered)"
    few = Comparison(1.0, (2, 5), reason="fewer than 3 seeds (n=2 vs 5)")
    assert _verdict(_claim("higher"), few, 50.0) == ("not measured", "fewer than 3 seeds (n=2 vs 5)")


def test_unknown_study_key_and_missing_file(tmp_path, capsys):
    assert main(["study", "fil=x.toml"]) == 2
    assert "unknown key 'fil'" in capsys.readouterr().err
    assert main(["study", f"file={tmp_path / 'none.toml'}"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_runs_cost_counts_the_parts_of_training_once():
    """The teacher's forward and the sampling happen inside training steps: the study's cost (and any total
    of a record's timings) adds them to nothing."""
    from kdbench.results import run_seconds

    record = {"timings": {"teacher_s": 2.0, "train_s": 1031.0, "eval_s": 110.0, "teacher_forward_s": 219.0,
                          "val_s": 217.0, "generation_s": 217.0, "diagnostics_s": 369.0}}  # a gkd record's
    assert run_seconds(record) == 2.0 + 1031.0 + 110.0 + 217.0 + 369.0
