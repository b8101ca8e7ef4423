"""Statistics for leaderboards: confidence intervals over seeds, and seed-aware comparisons of two methods.

- `mean_ci(values)`: mean and the half-width of the two-sided 95% Student-t
  interval, mean ± t(0.975, n−1)·s/√n, with s the sample standard deviation.
  n = 1 has no interval (None), never a made-up one.
- `paired_bootstrap(a, b, n_resamples, seed)`: a and b are (n_resamples,) arrays
  of two systems' scores on the *same* resampled example sets (see
  `resampled_scores`). Δ* = a − b per resample. Two-sided p-value
  p = min(1, 2·min(P(Δ* ≤ 0), P(Δ* ≥ 0)))  (Koehn 2004's paired bootstrap, read
  as a percentile test of Δ = 0). Identical predictions give Δ* ≡ 0 and p = 1; a
  method better on nearly every resample gives p ≈ 0.
- Comparisons are seed-aware (`two_level`, `compare`): the unit is a trained student. Each resample
  draws seeds with replacement, then, for each drawn seed, evaluation examples with replacement, and
  scores that seed's student on them; a system's resampled score is the mean over its drawn seeds.
  Where both methods have the same seeds the draws are paired (one seed draw picks both methods' students
  of that seed, and both are scored on the same examples); otherwise each method's seeds are drawn on
  their own (the examples of position j are still shared). Δ* = A* − B* per resample; the effect is
  the observed Δ with the 2.5–97.5 percentile interval of Δ*, and the two-sided p-value is
  p = min(1, 2·min(#{Δ* ≤ 0} + 1, #{Δ* ≥ 0} + 1) / (B + 1)), never below 2/(B+1) (with the +1 a
  bootstrap p-value is a valid test; B appears in every caption). B grows with the Holm family
  (`resamples_for`), so that floor never decides a wide table's verdicts. Fewer than `MIN_SEEDS` seeds on either
  side: no interval and no p, only Δ and the reason.
- `holm(ps)`: Holm–Bonferroni step-down adjusted p-values of one family (a leaderboard table).
- `resamples_for(m)`: B for a family of m tests: B + 1 ≥ 10·m/α (so the smallest Holm-adjusted p the
  bootstrap can give, 2m/(B+1), is at most α/5), rounded up to a thousand, at least `MIN_RESAMPLES`.
- `MDE_FACTOR · sd(Δ*)`: the minimum detectable difference at α = 0.05 (two-sided) and 80% power,
  (z_0.975 + z_0.8)·SE, with SE the bootstrap standard error, which holds both the seed and the example
  variance.
- `resampled_scores(metric, runs, references, idx)`: a metric recomputed on every
  row of the index matrix idx (n_resamples × n), averaged over the runs (seeds,
  or decoding seeds) of one system. Corpus metrics stay corpus metrics: BLEU
  from summed n-gram statistics, CER as Σ edits ÷ Σ reference characters,
  F1/MCC from resampled confusion counts, Pearson/Spearman per resample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from kdbench.metric_specs import lookup

MIN_SEEDS = 3  # fewer seeds in a cell: no interval, no p-value (the table says so)
ALPHA, POWER = 0.05, 0.8
Z95 = float(scipy_stats.norm.ppf(1 - ALPHA / 2))  # 1.960: a normal 95% interval's half-width in standard errors
MDE_FACTOR = float(Z95 + scipy_stats.norm.ppf(POWER))  # 2.8016
MIN_RESAMPLES = 1000


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float | None, int]:
    """(mean, half-width of the t interval or None when n < 2, n)."""
    x = np.asarray(list(values), dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    if n < 2:
        return mean, None, n
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half, n


def resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n) example indices drawn with replacement; one seed, so both systems see the same rows."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def bootstrap_p(delta_star: np.ndarray) -> float:
    """Two-sided bootstrap p-value of Δ = 0 from B resampled differences, with the +1 correction:
    min(1, 2·min(#{Δ* ≤ 0} + 1, #{Δ* ≥ 0} + 1) / (B + 1)); never below 2/(B+1)."""
    below, above = int(np.sum(delta_star <= 0)), int(np.sum(delta_star >= 0))
    return float(min(1.0, 2.0 * (min(below, above) + 1) / (len(delta_star) + 1)))


def paired_bootstrap(a: np.ndarray, b: np.ndarray) -> float:
    """`bootstrap_p` of Δ* = a − b, two systems' scores on the same resamples."""
    return bootstrap_p(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))


def seed_draws(seeds_a: list, seeds_b: list, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(choice_a (B, n_a), choice_b (B, n_b), paired): which run fills each seed position of each resample.

    Paired when both sides hold the same seeds, once each: a draw picks a seed, and both sides use their run
    of that seed at that position."""
    rng = np.random.default_rng(seed)
    if sorted(seeds_a) == sorted(seeds_b) and len(set(seeds_a)) == len(seeds_a):
        order_b = [seeds_b.index(s) for s in seeds_a]  # b's run index of a's seeds
        choice_a = rng.integers(0, len(seeds_a), size=(n_resamples, len(seeds_a)))
        return choice_a, np.asarray(order_b)[choice_a], True
    return (rng.integers(0, len(seeds_a), size=(n_resamples, len(seeds_a))),
            rng.integers(0, len(seeds_b), size=(n_resamples, len(seeds_b))), False)


def two_level(values: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """A system's resampled scores (B,): values (runs, positions, B) holds each run's score on each seed
    position's example resample; choice (B, n) the run drawn at position j < n of each resample."""
    b = np.arange(choice.shape[0])[:, None]
    return values[choice, np.arange(choice.shape[1])[None, :], b].mean(axis=1)


@dataclass
class Comparison:
    """Method A − reference B on one task (or the average), in score points."""

    delta: float  # observed: mean over A's seeds − mean over B's seeds
    n: tuple[int, int]  # seeds on each side
    low: float | None = None  # 95% percentile interval of Δ*
    high: float | None = None
    p: float | None = None  # two-sided bootstrap p (≥ 2/(B+1))
    sd: float | None = None  # bootstrap standard error of Δ
    paired: bool = False
    reason: str | None = None  # why there is no interval and p (too few seeds)
    p_holm: float | None = None  # Holm-adjusted over the table's family


def compare(delta_star: np.ndarray, observed: float, n: tuple[int, int], paired: bool) -> Comparison:
    """The effect, its interval and p from the resampled differences; only Δ when a side has < MIN_SEEDS."""
    if min(n) < MIN_SEEDS:
        return Comparison(observed, n, paired=paired, reason=f"fewer than {MIN_SEEDS} seeds (n={n[0]} vs {n[1]})")
    low, high = np.percentile(delta_star, [2.5, 97.5])
    return Comparison(observed, n, float(low), float(high), bootstrap_p(delta_star), float(np.std(delta_star, ddof=1)),
                      paired)


def resamples_for(tests: int) -> int:
    """B for one Holm family of `tests` tests. Holm multiplies the smallest p by the family size, and a
    bootstrap p is never below 2/(B+1), so at a fixed B = 1,000 a table of 26 or more tests could not
    pass α = 0.05 however large its effects. B + 1 ≥ 10·m/α puts that floor at α/5 or below, and leaves
    about ten resampled differences beyond zero at the per-test threshold α/m, so p there is resolved, not
    rounded; rounded up to a thousand, and never below MIN_RESAMPLES."""
    needed = math.ceil(10 * max(tests, 0) / ALPHA) - 1
    return max(MIN_RESAMPLES, math.ceil(needed / 1000) * 1000)


def holm(ps: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order: the i-th smallest (1-based) becomes
    max over j ≤ i of min(1, (m − j + 1)·p_(j))."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def prepare(metric: str, predictions: list, references: list) -> np.ndarray:
    """One run's per-example statistics for `metric` (computed once, then scored on every resample)."""
    return _resampling(metric).prepare(predictions, references)


def score(metric: str, stats: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`metric` (0–100) recomputed on each row of the index matrix idx (n_resamples × n); (n_resamples,)."""
    return _resampling(metric).score(stats, idx)


def resampled_scores(metric: str, runs: list[list], references: list, idx: np.ndarray) -> np.ndarray:
    """`metric` on each resample, averaged over the system's runs; (n_resamples,)."""
    return np.mean([score(metric, prepare(metric, run, references), idx) for run in runs], axis=0)


def _resampling(metric: str):
    spec = lookup(metric)
    if spec is None or spec.resample is None:
        raise KeyError(f"{metric} has no resampling statistic (kdbench.metric_specs)")
    return spec.resample
