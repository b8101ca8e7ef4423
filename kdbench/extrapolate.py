"""A labelled learning-curve extrapolation: how many steps a curve would need to pass the convergence rule.

Used where a suite's students cannot plateau at a budget 2 cores can give (README "Calibrated budgets",
"budget-bound"). It is an EXTRAPOLATION, and everything that prints it says so:

- Fit L(s) = a + b · s^(−c) (a power law with a floor, b > 0, c > 0) to the validation-loss points of one
  curve (step 0 left out: the untrained model is not on the power law), by least squares: a grid over c,
  and a and b in closed form for each c.
- The convergence rule (kdbench.convergence) asks that the best validation loss improve by less than the
  tolerance over the last 20% of a run of S steps. On the fitted curve that is
      L(0.8·S) − L(S) < tol · L(0.8·S)
  ⇔ x · (1 − 0.8^c − tol) < tol · a,  with x = b · (0.8·S)^(−c),
  which gives S in closed form (below). When 1 − 0.8^c ≤ tol every S passes; when a ≤ 0 none does (the
  fit has no floor to approach) and the result says so.

What it cannot know: the learning-rate schedule decays to 0 at the end of every run, so a run of S steps
is a different curve from the first S steps of the run that was fitted (its annealing tail lowers the
loss sooner). The fitted curve is the fitted run's; the figure is a guide to the order of magnitude.
"""

from __future__ import annotations

import math

from kdbench.convergence import LATE_SHARE, LOSS_TOLERANCE

LABEL = "extrapolated (power-law fit a + b·s^-c to one validation-loss curve; not measured)"
EXPONENTS = [i / 200 for i in range(2, 601)]  # c in 0.01 … 3.0


def fit_power_law(points: list) -> dict | None:
    """{"a", "b", "c", "rmse"} of the best fit to the points' (step, val_loss) with step > 0; None when
    fewer than 3 such points or no fit with b > 0 exists (a curve that does not fall)."""
    xy = [(float(p[0]), float(p[1])) for p in points if p[0] > 0]
    if len(xy) < 3:
        return None
    best = None
    for c in EXPONENTS:
        u = [s ** -c for s, _ in xy]
        y = [v for _, v in xy]
        n, su, sy = len(u), sum(u), sum(y)
        suu, suy = sum(t * t for t in u), sum(t * v for t, v in zip(u, y))
        det = n * suu - su * su
        if det <= 1e-18:
            continue
        b = (n * suy - su * sy) / det
        a = (sy - b * su) / n
        if b <= 0:
            continue
        sse = sum((a + b * t - v) ** 2 for t, v in zip(u, y))
        if best is None or sse < best[0]:
            best = (sse, a, b, c)
    if best is None:
        return None
    sse, a, b, c = best
    return {"a": a, "b": b, "c": c, "rmse": math.sqrt(sse / len(xy))}


def steps_to_converge(fit: dict, tolerance: float = LOSS_TOLERANCE, late_share: float = LATE_SHARE) -> float | None:
    """The run length S at which the fitted curve passes the loss part of the rule (module docstring);
    0.0 when every length passes; None when none does (a ≤ 0)."""
    a, b, c = fit["a"], fit["b"], fit["c"]
    start = 1.0 - late_share
    margin = 1.0 - start ** c - tolerance
    if margin <= 0:
        return 0.0
    if a <= 0:
        return None
    x_max = tolerance * a / margin  # b · (start·S)^(−c) must fall below this
    return (b / x_max) ** (1.0 / c) / start


def extrapolate(points: list, seconds_per_step: float | None = None, verdict: dict | None = None) -> dict:
    """The labelled extrapolation of one curve: the fit, the steps the rule would need (rounded up to 2
    significant figures), the loss the fit predicts there, and the CPU time at the measured rate.

    `verdict` is the measured curve's own judgement (kdbench.convergence.judge). No estimate is given
    where the fit cannot speak for the curve: a best fit at the edge of the exponent range (no power law
    with a floor describes it), a fit that passes the rule within a run that measurably did not, or a
    curve that fails the rule on its score alone (a loss fit does not model the score)."""
    out = {"label": LABEL, "fit": None, "steps_needed": None, "loss_at_steps": None, "hours": None}
    if verdict and verdict.get("loss_drop") is not None and verdict["loss_drop"] < LOSS_TOLERANCE \
            and verdict.get("converged") is False:
        out["why"] = (f"the curve fails the rule on its score (gain {verdict.get('score_gain')} points over the last"
                      " 20%), which a loss fit does not model")
        return out
    fit = fit_power_law(points)
    if fit is None:
        out["why"] = "fewer than 3 points after step 0, or a validation loss that does not fall"
        return out
    out["fit"] = {k: round(v, 6) for k, v in fit.items()}
    if fit["c"] <= EXPONENTS[0] or fit["c"] >= EXPONENTS[-1]:
        out["why"] = (f"the best fit sits at the edge of the exponent range (c = {fit['c']}): no power law with a"
                      " floor describes this curve")
        return out
    steps = steps_to_converge(fit)
    if steps is None:
        out["why"] = "the fit has no floor above 0 (a ≤ 0): no run length passes the rule on it"
        return out
    if verdict and verdict.get("converged") is False and steps <= points[-1][0]:
        out["why"] = (f"the fit passes the rule within the measured {points[-1][0]} steps, which did not: it does"
                      " not describe the curve's tail")
        return out
    steps = max(steps, float(points[-1][0]))
    digits = max(0, int(math.floor(math.log10(steps))) - 1)
    needed = int(math.ceil(steps / 10 ** digits) * 10 ** digits)
    out["steps_needed"] = needed
    out["loss_at_steps"] = round(fit["a"] + fit["b"] * needed ** -fit["c"], 6)
    if seconds_per_step:
        out["hours"] = round(needed * seconds_per_step / 3600, 2)
    return out


def describe(result: dict) -> str:
    """One line for a person: what the fit says, labelled as an extrapolation."""
    if result["steps_needed"] is None:
        return f"{result['label']}: no estimate ({result.get('why', 'no fit')})"
    fit = result["fit"]
    text = (f"{result['label']}: L(s) = {fit['a']:.4g} + {fit['b']:.4g}·s^-{fit['c']:.3g} (rmse {fit['rmse']:.3g});"
            f" passes the rule at about {result['steps_needed']:,} steps (loss {result['loss_at_steps']:.4g})")
    if result["hours"] is not None:
        text += f", about {result['hours']:,} hours at the measured rate"
    return text
