"""Per-example statistics of each resampled metric, in two stages: `prep` turns one run's predictions into
per-example statistics once; `score` recomputes the corpus metric (0–100) from the rows of them that each
resample draws. Corpus metrics stay corpus metrics: BLEU from summed n-gram statistics, CER as Σ edits ÷ Σ
reference characters, F1/MCC from resampled confusion counts, Pearson/Spearman per resample. Which metric
uses which pair is declared in `kdbench.metric_specs`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

def prep_accuracy(p, y):
    return (np.asarray(p) == np.asarray(y)).astype(float)


def score_mean(stats, idx):
    return 100.0 * stats[idx].mean(axis=1)


def prep_confusion(p, y):
    pp, yy = np.asarray(p) == 1, np.asarray(y) == 1
    return np.stack([pp & yy, pp & ~yy, ~pp & yy, ~pp & ~yy], axis=1).astype(float)  # tp, fp, fn, tn


def score_f1(stats, idx):
    tp, fp, fn, _ = stats[idx].sum(axis=1).T
    denom = 2 * tp + fp + fn
    return 100.0 * np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def score_mcc(stats, idx):
    tp, fp, fn, tn = stats[idx].sum(axis=1).T
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 100.0 * np.divide(tp * tn - fp * fn, denom, out=np.zeros_like(tp), where=denom > 0)


def pearson_rows(a, b):
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return 100.0 * np.divide((a * b).sum(1), denom, out=np.zeros(len(a)), where=denom > 0)


def prep_pair(p, y):
    return np.stack([np.asarray(p, dtype=float), np.asarray(y, dtype=float)], axis=1)


def score_pearson(stats, idx):
    return pearson_rows(stats[idx, 0], stats[idx, 1])


def score_spearman(stats, idx):
    return pearson_rows(scipy_stats.rankdata(stats[idx, 0], axis=1), scipy_stats.rankdata(stats[idx, 1], axis=1))


def prep_bleu(predictions, references) -> np.ndarray:
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


def score_bleu(stats, idx):
    from sacrebleu.metrics.bleu import BLEU

    summed = stats[idx].sum(axis=1)  # (B, 10): corpus statistics of each resample
    # sacrebleu's corpus BLEU smooths with "exp"; compute_bleu's own default is no smoothing
    return np.array([BLEU.compute_bleu(r[2:6].tolist(), r[6:10].tolist(), int(r[0]), int(r[1]), smooth_method="exp").score for r in summed])


def prep_cer(predictions, references):
    import jiwer

    return np.array([
        (o.substitutions + o.deletions + o.insertions, o.substitutions + o.deletions + o.hits)
        for o in (jiwer.process_characters(ref, pred) for pred, ref in zip(predictions, references))
    ], dtype=float)


def score_cer(stats, idx):
    edits, chars = stats[idx, 0].sum(1), stats[idx, 1].sum(1)
    return 100.0 * edits / np.maximum(chars, 1.0)


def prep_rouge(key):
    def fn(predictions, references):
        from kdbench.metrics import rouge

        return np.array([rouge([pred], [ref])[key] for pred, ref in zip(predictions, references)]) / 100.0
    return fn


# base metric -> (prepare(predictions, references) -> per-example statistics, score(statistics, idx) -> (B,))

def prep_gsm8k(predictions, references):
    """1 where the prediction's final number equals the reference's (`metrics.final_number`), else 0."""
    from kdbench.metrics import final_number

    return np.array([final_number(p) is not None and final_number(p) == final_number(r)
                     for p, r in zip(predictions, references)], dtype=float)
