"""The labelled learning-curve extrapolation: the power-law fit and the run length the rule would need."""

import math

import pytest

from kdbench.convergence import judge
from kdbench.extrapolate import LABEL, describe, extrapolate, fit_power_law, steps_to_converge


def curve(a, b, c, steps):
    return [[0, 10.0, {}]] + [[s, a + b * s ** -c, {}] for s in steps]


def test_fit_recovers_an_exact_power_law_and_ignores_step_zero():
    fit = fit_power_law(curve(2.0, 3.0, 0.5, range(100, 1100, 100)))
    assert fit["a"] == pytest.approx(2.0, abs=1e-6) and fit["b"] == pytest.approx(3.0, rel=1e-5)
    assert fit["c"] == pytest.approx(0.5) and fit["rmse"] < 1e-9


def test_steps_to_converge_by_hand():
    # a=2, b=3, c=0.5, tol 2%: margin = 1 − 0.8^0.5 − 0.02 = 0.0855728; x_max = 0.04 / margin = 0.467437;
    # S = (3 / x_max)^2 / 0.8 = 51.488
    steps = steps_to_converge({"a": 2.0, "b": 3.0, "c": 0.5})
    assert steps == pytest.approx(51.488, abs=1e-3)
    loss = lambda s: 2.0 + 3.0 * s ** -0.5  # noqa: E731
    assert (loss(0.8 * steps) - loss(steps)) / loss(0.8 * steps) == pytest.approx(0.02, abs=1e-9)


def test_the_rule_agrees_with_the_estimate_on_the_fitted_curve():
    a, b, c = 1.5, 40.0, 0.7
    needed = steps_to_converge({"a": a, "b": b, "c": c})
    for length, passes in ((needed * 0.9, False), (needed * 1.1, True)):
        points = [[0, 10.0, {}]] + [[length * i / 20, a + b * (length * i / 20) ** -c, {}] for i in range(1, 21)]
        assert judge(points)["converged"] is passes


def test_edge_cases():
    assert steps_to_converge({"a": 2.0, "b": 1.0, "c": 0.05}) == 0.0  # 1 − 0.8^0.05 = 0.011 < 2%: any length
    assert steps_to_converge({"a": -1.0, "b": 1.0, "c": 0.5}) is None  # no floor: never passes
    flat = extrapolate([[0, 3.0, {}], [10, 2.0, {}], [20, 2.5, {}], [30, 3.0, {}]])
    assert flat["steps_needed"] is None and "does not fall" in flat["why"]
    assert extrapolate([[0, 3.0, {}], [10, 2.0, {}]])["fit"] is None


def test_extrapolate_rounds_up_labels_and_prices_the_budget():
    result = extrapolate(curve(2.0, 3.0, 0.5, range(2, 22, 2)), seconds_per_step=1.8)
    assert result["label"] == LABEL and result["steps_needed"] == 52  # 51.49 rounded up to 2 digits
    assert result["hours"] == pytest.approx(52 * 1.8 / 3600, abs=0.01)
    assert result["loss_at_steps"] == pytest.approx(2.0 + 3.0 / math.sqrt(52), abs=1e-5)
    text = describe(result)
    assert text.startswith("extrapolated") and "52 steps" in text and "hours" in text



def test_no_estimate_where_the_fit_cannot_speak_for_the_curve():
    points = curve(2.0, 3.0, 0.5, range(2, 22, 2))
    # the measured run failed the rule, yet the fit passes it within the run (51 steps needed, 20 measured: fine;
    # here the run is longer than the fit needs): no estimate rather than "passes at the measured length"
    long = curve(2.0, 3.0, 0.5, range(100, 1100, 100))
    out = extrapolate(long, verdict={"converged": False, "loss_drop": 0.03, "score_gain": None})
    assert out["steps_needed"] is None and "does not describe the curve's tail" in out["why"]
    # failing on the score alone: a loss fit says nothing about it
    out = extrapolate(points, verdict={"converged": False, "loss_drop": 0.01, "score_gain": 3.0})
    assert out["fit"] is None and "fails the rule on its score" in out["why"]
    # a straight line in log-loss (no floor in sight) fits only at the exponent grid's edge
    line = [[0, 9.0, {}]] + [[s, 5.0 - 0.004 * s, {}] for s in range(100, 1100, 100)]
    assert "edge of the exponent range" in extrapolate(line)["why"]
    # an honest case still gets its estimate
    assert extrapolate(points, verdict={"converged": False, "loss_drop": 0.05, "score_gain": None})["steps_needed"] == 52
