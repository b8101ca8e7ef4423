"""Statistics for leaderboards: confidence intervals over seeds and paired-bootstrap p-values over examples.

- `mean_ci(values)`: mean and the half-width of the two-sided 95% Student-t
  interval, mean ± t(0.975, n−1)·s/√n, with s the sample standard deviation.
  n = 1 has no interval (None), never a made-up one.
- `paired_bootstrap(a, b, n_resamples, seed)`: a and b are (n_resamples,) arrays
  of two systems' scores on the *same* resampled example sets (see
  `resampled_scores`). Δ* = a − b per resample. Two-sided p-value
  p = min(1, 2·min(P(Δ* ≤ 0), P(Δ* ≥ 0)))  (Koehn 2004's paired bootstrap, read
  as a percentile test of Δ = 0). Identical predictions give Δ* ≡ 0 and p = 1; a
  method better on nearly every resample gives p ≈ 0.
- `resampled_scores(metric, runs, references, idx)`: a metric recomputed on every
  row of the index matrix idx (n_resamples × n), averaged over the runs (seeds,
  or decoding seeds) of one system. Corpus metrics stay corpus metrics: BLEU
  from summed n-gram statistics, CER as Σ edits ÷ Σ reference characters,
  F1/MCC from resampled confusion counts, Pearson/Spearman per resample.
"""

from __future__ import annotations

import math
import numpy as np
from scipy import stats as scipy_stats


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


def paired_bootstrap(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired-bootstrap p-value of Δ = a − b from scores on the same resamples."""
    delta = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return float(min(1.0, 2.0 * min(np.mean(delta <= 0), np.mean(delta >= 0))))


# --- metrics on resamples: each maps (predictions, references, idx) -> (n_resamples,) scores on 0–100 ---

def _accuracy(p, y, idx):
    return 100.0 * (p[idx] == y[idx]).mean(axis=1)


def _confusion(p, y, idx):
    pp, yy = p[idx] == 1, y[idx] == 1
    tp, fp = (pp & yy).sum(1).astype(float), (pp & ~yy).sum(1).astype(float)
    fn, tn = (~pp & yy).sum(1).astype(float), (~pp & ~yy).sum(1).astype(float)
    return tp, fp, fn, tn


def _f1(p, y, idx):
    tp, fp, fn, _ = _confusion(p, y, idx)
    denom = 2 * tp + fp + fn
    return 100.0 * np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def _mcc(p, y, idx):
    tp, fp, fn, tn = _confusion(p, y, idx)
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 100.0 * np.divide(tp * tn - fp * fn, denom, out=np.zeros_like(tp), where=denom > 0)


def _pearson_rows(a, b):
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return 100.0 * np.divide((a * b).sum(1), denom, out=np.zeros(len(a)), where=denom > 0)


def _pearson(p, y, idx):
    return _pearson_rows(p[idx].astype(float), y[idx].astype(float))


def _spearman(p, y, idx):
    return _pearson_rows(scipy_stats.rankdata(p[idx], axis=1), scipy_stats.rankdata(y[idx], axis=1))


def _bleu_stats(predictions, references) -> np.ndarray:
    """(n, 10) sacrebleu sentence statistics (one reference each, as `metrics.bleu`):
    sys_len, ref_len, matches 1–4, totals 1–4."""
    import sacrebleu

    # 13a tokenisation as metrics.bleu; effective_order only changes a sentence's *score* (unused here), not its counts
    scorer = sacrebleu.BLEU(effective_order=True)
    rows = []
    for pred, ref in zip(predictions, references):
        s = scorer.sentence_score(pred, [ref])
        rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    return np.asarray(rows, dtype=np.int64)


def _bleu(p, y, idx):
    from sacrebleu.metrics.bleu import BLEU

    summed = _bleu_stats(p, y)[idx].sum(axis=1)  # (B, 10): corpus statistics of each resample
    # sacrebleu's corpus BLEU smooths with "exp"; compute_bleu's own default is no smoothing
    return np.array([BLEU.compute_bleu(r[2:6].tolist(), r[6:10].tolist(), int(r[0]), int(r[1]), smooth_method="exp").score for r in summed])


def _cer(p, y, idx):
    import jiwer

    counts = np.array([
        (o.substitutions + o.deletions + o.insertions, o.substitutions + o.deletions + o.hits)
        for o in (jiwer.process_characters(ref, pred) for pred, ref in zip(p, y))
    ], dtype=float)
    edits, chars = counts[idx, 0].sum(1), counts[idx, 1].sum(1)
    return 100.0 * edits / np.maximum(chars, 1.0)


def _rouge(key):
    def fn(p, y, idx):
        from kdbench.metrics import rouge

        per_example = np.array([rouge([pred], [ref])[key] for pred, ref in zip(p, y)])
        return per_example[idx].mean(axis=1)
    return fn


RESAMPLED = {
    "accuracy": _accuracy, "f1": _f1, "mcc": _mcc, "pearson": _pearson, "spearman": _spearman,
    "bleu": _bleu, "cer": _cer, "rouge1": _rouge("rouge1"), "rouge2": _rouge("rouge2"), "rougeL": _rouge("rougeL"),
}


def base_metric(name: str) -> str:
    """"accuracy_m" (MNLI matched) → "accuracy"."""
    return name if name in RESAMPLED else name.rsplit("_", 1)[0]


def resampled_scores(metric: str, runs: list[list], references: list, idx: np.ndarray) -> np.ndarray:
    """`metric` on each resample, averaged over the system's runs; (n_resamples,)."""
    fn = RESAMPLED[base_metric(metric)]
    numeric = base_metric(metric) not in ("bleu", "cer", "rouge1", "rouge2", "rougeL")
    y = np.asarray(references) if numeric else references
    out = [fn(np.asarray(run) if numeric else run, y, idx) for run in runs]
    return np.mean(out, axis=0)

