"""The leaderboard's empty-output column: the share of a run's text outputs that are empty as scored, read
from its examples file (a kd student on rouge v4 answered nothing on 34 of 100 abstracts)."""

import json

import pytest

from kdbench.leaderboard import EMPTY, MethodRow, _diagnostics, _drop_empty_column_if_zero, empty_output_percent


def test_empty_share_counts_every_split_and_decoding_and_skips_label_outputs():
    examples = {
        "scitldr": {"test": {"metrics": ["rouge1"], "references": [["a"]] * 4,
                             "predictions": {"greedy": ["", "we propose", "  \n ", "a method"]}}},
        "dolly": {"test": {"predictions": {"seed_10": ["x", ""], "seed_20": ["", ""]}}},
        "sst2": {"validation": {"predictions": {"greedy": [0, 1, 1]}}},  # class labels: no text to be empty
    }
    assert empty_output_percent(examples) == {"scitldr": 50.0, "dolly": 75.0}
    assert empty_output_percent(None) == {}


def _record(tmp_path, name, predictions):
    examples = tmp_path / "examples" / f"{name}.json"
    examples.parent.mkdir(exist_ok=True)
    examples.write_text(json.dumps({"scitldr": {"test": {"metrics": ["rouge1"], "references": [["a"]] * 4,
                                                         "predictions": {"greedy": predictions}}}}))
    return {"_path": str(tmp_path / f"{name}.json"), "examples_file": f"examples/{name}.json",
            "diagnostics": {"scitldr": {"kl_teacher": 1.0}}}


def test_the_column_averages_runs_and_is_kept_with_a_note_only_where_some_output_is_empty(tmp_path):
    kd = [_record(tmp_path, "kd-0", ["", "", "b", "c"]), _record(tmp_path, "kd-1", ["", "a", "b", "c"])]
    none = [_record(tmp_path, "none-0", ["a", "a", "b", "c"])]
    rows = [MethodRow("none", none, {}, None), MethodRow("kd", kd, {}, None)]
    for row in rows:
        row.diagnostics = _diagnostics(row.runs)
    assert rows[1].diagnostics[f"scitldr {EMPTY}"][0] == pytest.approx(37.5)  # (50 + 25) / 2
    assert rows[0].diagnostics[f"scitldr {EMPTY}"][0] == 0.0
    notes = []
    _drop_empty_column_if_zero(rows, notes)
    assert all(f"scitldr {EMPTY}" in row.diagnostics for row in rows) and "empty-output baseline" in notes[0]

    rows = [MethodRow("none", none, {}, None)]
    rows[0].diagnostics = _diagnostics(none)
    notes = []
    _drop_empty_column_if_zero(rows, notes)
    assert set(rows[0].diagnostics) == {"scitldr kl_teacher"} and notes == []


def test_an_examples_file_is_read_once_and_again_when_it_is_rewritten(tmp_path):
    import os

    from kdbench.results import load_examples

    record = _record(tmp_path, "kd-0", ["", "a", "b", "c"])
    first = load_examples(record)
    assert load_examples(record) is first  # the comparisons reuse the leaderboard's read
    path = tmp_path / "examples" / "kd-0.json"
    path.write_text(path.read_text().replace('"a"', '"x"'))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    again = load_examples(record)
    assert again is not first and again["scitldr"]["test"]["predictions"]["greedy"][1] == "x"
    assert load_examples({"_path": str(tmp_path / "gone.json"), "examples_file": "examples/gone.json"}) is None
