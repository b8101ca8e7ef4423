"""Pure metric functions, every score on a 0–100 scale except perplexity.

Each metric's direction, scale and resampling statistic are declared in
`kdbench.metric_specs`, which leaderboards and regression checks read. Corpus
metrics (BLEU, CER, perplexity) are computed over the whole corpus, not as a
mean of sentence scores; ROUGE is the mean of per-example F-measures, as rouge-score and the MiniLLM/DistiLLM evaluations do.
Text-metric inputs are checked: equal lengths, no empty reference.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from kdbench.errors import KdbenchError

def accuracy(predictions, labels) -> float:
    p, y = np.asarray(predictions), np.asarray(labels)
    return 100.0 * float((p == y).mean())


def f1(predictions, labels) -> float:
    """Binary F1 of the positive class (label 1), as GLUE reports for MRPC and QQP."""
    return 100.0 * float(f1_score(labels, predictions, pos_label=1, zero_division=0))


def mcc(predictions, labels) -> float:
    """Matthews correlation coefficient (CoLA); 0 when a side is constant."""
    return 100.0 * float(matthews_corrcoef(labels, predictions))


def _correlation(fn, predictions, labels) -> float:
    p, y = np.asarray(predictions, dtype=float), np.asarray(labels, dtype=float)
    if np.ptp(p) == 0 or np.ptp(y) == 0:
        return 0.0  # undefined for a constant side; a constant predictor earns no credit
    value = float(fn(p, y)[0])
    return 100.0 * (0.0 if math.isnan(value) else value)


def pearson(predictions, labels) -> float:
    return _correlation(stats.pearsonr, predictions, labels)


def spearman(predictions, labels) -> float:
    return _correlation(stats.spearmanr, predictions, labels)


def _check_pairs(predictions, references) -> None:
    if len(predictions) != len(references):
        raise KdbenchError(f"{len(predictions)} predictions for {len(references)} references; they must pair up one to one")
    if not references:
        raise KdbenchError("no references to score")
    for i, ref in enumerate(references):
        options = ref if isinstance(ref, list) else [ref]  # several references per example are allowed
        if not options or not all(isinstance(o, str) and o.strip() for o in options):
            raise KdbenchError(f"reference {i} is empty; every example needs a non-empty reference")


def bleu_signature() -> str:
    """sacrebleu's signature of the BLEU settings used by `bleu` (store it with the score)."""
    import sacrebleu

    scorer = sacrebleu.BLEU()
    scorer.corpus_score(["a"], [["a"]])  # sacrebleu fills in the signature on first use
    return str(scorer.get_signature())


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation, exp smoothing, one reference), 0–100."""
    import sacrebleu

    _check_pairs(predictions, references)
    return float(sacrebleu.BLEU().corpus_score(list(predictions), [list(references)]).score)


def rouge(predictions: list[str], references: list) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures (rouge-score, Porter stemming), 0–100.

    A reference may be a list of strings (several references, as SciTLDR has): the
    example then scores the best F-measure over them, per metric.
    """
    from rouge_score import rouge_scorer

    _check_pairs(predictions, references)
    refs = [r if isinstance(r, list) else [r] for r in references]
    keys = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    totals = dict.fromkeys(keys, 0.0)
    for pred, options in zip(predictions, refs):
        scores = [scorer.score(ref, pred) for ref in options]
        for k in keys:
            totals[k] += max(s[k].fmeasure for s in scores)
    return {k: 100.0 * v / len(refs) for k, v in totals.items()}


def cer(predictions: list[str], references: list[str]) -> float:
    """Corpus character error rate (jiwer): total edits / total reference characters, 0–100 (lower is better)."""
    import jiwer

    _check_pairs(predictions, references)
    return 100.0 * float(jiwer.cer(list(references), list(predictions)))


LOGITS_BUDGET = 1 << 26  # floats of logits per forward when windows are batched (256 MB in float32)


def perplexity_windows(n_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first new target) of each sliding window over `n_tokens` tokens: every token after the first
    is a target of exactly one window, the first that has it past the previous window's end."""
    windows, scored_until = [], 1  # the first token has no context and is not scored
    for begin in range(0, max(n_tokens - 1, 1), stride):
        end = min(begin + max_length, n_tokens)
        windows.append((begin, end, max(scored_until - begin - 1, 0)))
        scored_until = end
        if end == n_tokens:
            break
    return windows


def perplexity(model, tokenizer, texts: list[str], stride: int = 512, max_length: int | None = None,
               max_tokens: int = 0, progress: bool = False, batch_size: int = 1) -> float:
    """Token-level perplexity of a causal LM over the texts joined by blank lines, by sliding window.

    Windows of `max_length` tokens (default: the model's context) advance by
    `stride` < max_length, so windows overlap and every token after the first
    is predicted exactly once, by the first window that has it as a new target,
    with at least max_length − stride tokens of context where the text allows. Returns
    exp(Σ NLL / number of predicted tokens). `max_tokens` > 0 scores only the first
    max_tokens tokens of the joined text. Windows of equal length go through the model
    `batch_size` at a time (fewer when their logits would exceed LOGITS_BUDGET floats): the
    same sum, in another order of float additions. Perplexities are comparable only
    between models with the same tokenizer.
    """
    import torch
    import torch.nn.functional as F

    if not texts or not any(t.strip() for t in texts):
        raise KdbenchError("perplexity needs non-empty text")
    max_length = max_length or getattr(model.config, "max_position_embeddings", 1024)
    if not 0 < stride < max_length:
        # stride = max_length would leave each window's first token unpredicted
        raise KdbenchError(f"perplexity stride must be in [1, {max_length - 1}] (below the window of {max_length}), got {stride}")
    ids = tokenizer("\n\n".join(texts), return_tensors="pt").input_ids[0]
    if max_tokens:
        ids = ids[:max_tokens]
    if len(ids) < 2:
        raise KdbenchError("perplexity needs at least 2 tokens of text")
    device = next(model.parameters()).device
    windows = perplexity_windows(len(ids), max_length, stride)
    vocab = getattr(model.config, "vocab_size", None) or 50_000
    per_batch = max(1, min(batch_size, LOGITS_BUDGET // (max_length * vocab)))
    groups, current = [], []
    for w in windows:  # consecutive windows of one length, at most per_batch of them
        if current and (len(current) == per_batch or w[1] - w[0] != current[0][1] - current[0][0]):
            groups.append(current)
            current = []
        current.append(w)
    groups.append(current)
    total_nll, total_tokens = 0.0, 0
    model.eval()
    if progress:
        from tqdm.auto import tqdm

        groups = tqdm(groups, desc="perplexity", unit="batch", leave=False)
    with torch.no_grad():
        for group in groups:
            window = torch.stack([ids[b:e] for b, e, _ in group]).to(device)
            logits = model(input_ids=window).logits[:, :-1].float()
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1),
                                  reduction="none").view(len(group), -1)
            for row, (_, _, first_new) in enumerate(group):  # skip targets an earlier window already scored
                total_nll += float(nll[row, first_new:].sum())
                total_tokens += nll.shape[1] - first_new
    return math.exp(total_nll / total_tokens)


def unigram_log_probs(train_ids, vocab_size: int) -> "np.ndarray":
    """log p(token) of the training tokens' unigram model with add-one smoothing over the vocabulary:
    p(t) = (count(t) + 1) / (N + V). The trivial language model every student must beat."""
    counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=vocab_size).astype(float)
    return np.log(counts + 1.0) - math.log(counts.sum() + vocab_size)


def unigram_nll(train_ids, eval_ids, vocab_size: int) -> float:
    """Mean negative log-likelihood (nats) of `eval_ids[1:]` under the unigram model of `train_ids`: the
    tokens `perplexity` scores (the first has no context there), so the two are comparable."""
    log_p = unigram_log_probs(train_ids, vocab_size)
    targets = np.asarray(eval_ids[1:], dtype=np.int64)
    if not len(targets):
        raise KdbenchError("the unigram baseline needs at least 2 eval tokens")
    return float(-log_p[targets].mean())


def final_number(text: str) -> str | None:
    """The answer of a GSM8K-style solution: the number after "####", else the last number in the text."""
    import re

    tail = text.split("####")[-1] if "####" in text else text
    numbers = re.findall(r"-?\d[\d,]*\.?\d*", tail)
    return numbers[-1].replace(",", "").rstrip(".") if numbers else None


def gsm8k_accuracy(predictions: list[str], references: list[str]) -> float:
    """Share of predictions whose final number equals the reference's "#### N" answer, 0–100."""
    _check_pairs(predictions, references)
    hits = sum(final_number(p) is not None and final_number(p) == final_number(r) for p, r in zip(predictions, references))
    return 100.0 * hits / len(references)
