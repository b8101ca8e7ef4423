"""Paper-scale presets: offline dry runs on tiny same-family models; hub-only tasks refuse clearly offline."""

import pytest

from kdbench import metrics
from kdbench.cli import main
from kdbench.errors import KdbenchError
from kdbench.suites.generation import GenerationSuite


@pytest.mark.parametrize("suite", ["rlkd_gsm8k", "rlkd_dolly", "rlkd_xsum", "minillm_dolly"])
@pytest.mark.parametrize("method", ["none", "kd", "rlkd", "fakd"])
def test_preset_dry_run_does_one_real_step_on_tiny_models(capsys, suite, method):
    assert main(["run", f"suite={suite}", f"method={method}", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert "dry run ok" in out and "5 response tokens scored" in out and f"method {method}" in out


def test_rlkd_preset_carries_the_papers_hyperparameters(capsys):
    assert main(["run", "suite=rlkd_gsm8k", "method=rlkd", "dry_run=true", "data.padding_side=left"]) == 0
    out = capsys.readouterr().out
    for text in ('"k": 5', '"w_rank": 2.0', '"lr": 2e-05', '"grad_accum": 32', '"seed": 72', "left padding"):
        assert text in out


def test_hub_only_tasks_are_refused_offline():
    with pytest.raises(KdbenchError, match="reads databricks/databricks-dolly-15k from the hub, which is offline"):
        GenerationSuite().load("dolly", None, 0, 0)


def test_gsm8k_accuracy_reads_the_final_number():
    # the number after "####" when present (commas dropped), else the last number in the text
    assert metrics.final_number("3 + 4 = 7\n#### 1,234") == "1234"
    assert metrics.final_number("The answer is 42.") == "42"
    assert metrics.final_number("no digits") is None
    # 1 of 2 right: 50%
    assert metrics.gsm8k_accuracy(["so #### 42", "41"], ["6·7 #### 42", "#### 42"]) == 50.0
