"""Plug-ins: a method in the user's own file runs like a built-in (kdbench.plugins, examples/logit_mse.py)."""
import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch

from kdbench.cli import main
from tests.conftest import REPO, as_committed

EXAMPLE = REPO / "examples" / "logit_mse.py"


def _tiny(data_root, results, cache_dir, *extra):
    return ["suite=char_tiny", f"data_dir={data_root}", f"results_dir={results}", f"cache_dir={cache_dir}",
            "train.max_steps=20", *extra]


def test_the_example_loss_by_hand():
    from kdbench.plugins import load_file

    load_file(str(EXAMPLE))
    module = next(m for name, m in sys.modules.items() if name.startswith("kdbench_plugin_logit_mse"))
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [3.0, 1.0]])
    # row means of squared differences: (0 + 4) / 2 = 2 and (9 + 1) / 2 = 5
    assert module.logit_mse(s, t, None).item() == pytest.approx(3.5)
    assert module.logit_mse(s, t, torch.tensor([1, 0])).item() == pytest.approx(2.0)


def test_a_method_from_a_user_file_runs_sweeps_ranks_and_is_recorded(tmp_path, data_root, cache_dir, capsys):
    include = f"include=[{EXAMPLE}]"
    assert main(["ls", "methods", include]) == 0
    assert "logit_mse" in capsys.readouterr().out
    results = tmp_path / "r"
    assert main(["sweep", "methods=[none,logit_mse]", "seeds=[0]", include, *_tiny(data_root, results, cache_dir)]) == 0
    record = json.loads(next((results / "char_tiny").glob("logit_mse-*.json")).read_text())
    assert record["status"] == "complete" and record["method"] == "logit_mse"
    assert record["plugins"] == [{"path": str(EXAMPLE), "sha256": hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()}]
    assert record["teacher_outputs"]["shakespeare"]["used"]  # the teacher-output cache serves it like a built-in
    capsys.readouterr()
    assert main(["leaderboard", f"results_dir={as_committed(results)}", include]) == 0
    assert any(line.startswith("logit_mse ") for line in capsys.readouterr().out.splitlines())
    # the same sweep again: the plug-in's cell is complete and skipped (resume works for it too)
    assert main(["sweep", "methods=[logit_mse]", "seeds=[0]", include, *_tiny(data_root, results, cache_dir)]) == 0
    assert "0 cells ran, 1 skipped" in capsys.readouterr().out


def test_without_the_include_the_method_is_unknown(capsys):
    assert main(["run", "suite=char_tiny", "method=logit_mse_missing", "dry_run=true"]) == 2
    assert "unknown method 'logit_mse_missing'" in capsys.readouterr().err


@pytest.mark.parametrize("source, where, message", [
    ("x = 1\ndef broken(:\n", ":2", "SyntaxError"),
    ("import os\nraise RuntimeError('no GPU here')\n", ":2", "RuntimeError: no GPU here"),
    ("from kdbench.methods import register_method\nfrom kdbench.methods.none import NoneParams\n"
     "register_method('kd', params=NoneParams, needs=frozenset())(lambda s, p, st=None: 0)\n", ":3",
     "method 'kd' is registered twice"),
])
def test_a_plug_in_that_fails_to_import_is_one_line_naming_file_and_line(tmp_path, capsys, source, where, message):
    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text(source)
    assert main(["ls", "methods", f"include=[{plugin}]"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{plugin}{where}" in err and message in err, err
    assert "Traceback" not in err


def test_a_missing_or_non_python_plug_in_is_refused(tmp_path, capsys):
    assert main(["ls", f"include=[{tmp_path / 'nowhere.py'}]"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hi")
    assert main(["ls", f"include=[{tmp_path / 'notes.txt'}]"]) == 2
    assert "is not a .py file" in capsys.readouterr().err


def test_an_installed_package_offers_plug_ins_through_the_entry_point_group(tmp_path):
    site = tmp_path / "site"
    (site / "kdbench_demo_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "kdbench_demo_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: kdbench-demo-plugin\nVersion: 0.1\n")
    (site / "kdbench_demo_plugin-0.1.dist-info" / "entry_points.txt").write_text("[kdbench.plugins]\ndemo = kdbench_demo_plugin\n")
    (site / "kdbench_demo_plugin.py").write_text(EXAMPLE.read_text().replace('"logit_mse"', '"demo_mse"'))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    done = subprocess.run([sys.executable, "-m", "kdbench", "ls", "methods"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "demo_mse" in done.stdout, done.stderr
    (site / "kdbench_demo_plugin.py").write_text("raise ImportError('needs torch 9')\n")
    done = subprocess.run([sys.executable, "-m", "kdbench", "ls", "methods"], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "entry point demo" in done.stderr and "needs torch 9" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


SUITE_PLUGIN = '''
"""Tiny Shakespeare read backwards: a suite kind in one file (the char kind's models and metrics)."""
from kdbench.data.local import Split
from kdbench.suites.base import register_suite_kind
from kdbench.suites.char import CharSuite


@register_suite_kind("backwards_char")
class BackwardsChar(CharSuite):
    def load(self, name, data_root, max_train, max_eval):
        data = super().load(name, data_root, max_train, max_eval)
        flip = lambda s: Split([s.examples[0][::-1]], s.source + " [reversed]", s.sha256 + "/reversed")
        data.train, data.evals = flip(data.train), {k: flip(v) for k, v in data.evals.items()}
        return data
'''


def test_a_suite_kind_from_a_user_file_and_its_toml_run_like_a_built_in(tmp_path, data_root, cache_dir, capsys,
                                                                        monkeypatch):
    plugin, presets = tmp_path / "backwards.py", tmp_path / "presets"
    plugin.write_text(SUITE_PLUGIN)
    presets.mkdir()
    toml = (REPO / "suites" / "char_tiny.toml").read_text().replace('kind = "char"', 'kind = "backwards_char"')
    (presets / "backwards_tiny.toml").write_text(toml)
    monkeypatch.setenv("KDBENCH_SUITES_DIR", str(presets))
    results = tmp_path / "r"
    args = ["suite=backwards_tiny", f"include=[{plugin}]", f"data_dir={data_root}", f"results_dir={results}",
            f"cache_dir={cache_dir}"]
    assert main(["sweep", "methods=[none,kd]", "seeds=[0]", *args]) == 0
    records = [json.loads(p.read_text()) for p in sorted((results / "backwards_tiny").glob("*.json"))]
    assert [r["status"] for r in records] == ["complete", "complete"]
    assert records[0]["data"]["shakespeare"]["train"].endswith("[reversed]")
    assert main(["run", "suite=char_tiny", "dry_run=true"]) == 0  # the built-in presets are still found
    capsys.readouterr()
    assert main(["leaderboard", f"results_dir={as_committed(results)}", f"include=[{plugin}]"]) == 0
    assert "backwards_tiny" in capsys.readouterr().out
