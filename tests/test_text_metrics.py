"""BLEU, ROUGE, CER and perplexity against hand-checked cases, corpus-level where it matters."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from kdbench import metrics
from kdbench.errors import KdbenchError


def test_bleu_is_corpus_level_not_a_mean_of_sentences():
    # Pooled n-gram precisions over both sentences: p1 = 4/7, p2 = 3/5, p3 = 2/3, p4 = 1/1, BP = 1 (7 vs 7 tokens);
    # BLEU = (4/7 · 3/5 · 2/3 · 1)^(1/4) = (24/105)^0.25 = 0.691442. Sentence BLEUs are 100 and 0: their mean is 50.
    preds, refs = ["a b c d", "w x y"], ["a b c d", "p q r"]
    assert metrics.bleu(preds, refs) == pytest.approx(69.1442, abs=1e-3)
    assert metrics.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert "tok:13a" in metrics.bleu_signature()


def test_rouge_f_measures_with_stemming():
    # "the cat sat" vs "the cat sat down": P = 1, R = 3/4 → F1 = 2·0.75/1.75 = 0.857143; bigrams P = 1, R = 2/3 → 0.8
    scores = metrics.rouge(["the cat sat"], ["the cat sat down"])
    assert scores == pytest.approx({"rouge1": 85.7143, "rouge2": 80.0, "rougeL": 85.7143}, abs=1e-3)
    assert metrics.rouge(["cats sat"], ["cat sat"])["rouge1"] == pytest.approx(100.0)  # Porter stemming
    # the corpus score is the mean of per-example F: (85.7143 + 0) / 2
    assert metrics.rouge(["the cat sat", "zzz"], ["the cat sat down", "a b"])["rouge1"] == pytest.approx(42.8571, abs=1e-3)


def test_cer_is_corpus_level():
    # 1 substitution over 2 + 10 reference characters = 8.333%; the mean of sentence CERs would be (50 + 0)/2 = 25%
    assert metrics.cer(["xb", "abcdefghij"], ["ab", "abcdefghij"]) == pytest.approx(100 / 12)
    assert metrics.cer(["abc"], ["abc"]) == 0.0


@pytest.mark.parametrize("fn", [metrics.bleu, metrics.rouge, metrics.cer])
def test_text_metrics_refuse_bad_pairs(fn):
    with pytest.raises(KdbenchError, match="2 predictions for 1 references"):
        fn(["a", "b"], ["a"])
    with pytest.raises(KdbenchError, match="reference 1 is empty"):
        fn(["a", "b"], ["a", "  "])


class CharTokenizer:
    """Token = character code − 97 (a → 0 ...), enough to drive `perplexity`."""

    def __call__(self, text, return_tensors=None):
        return SimpleNamespace(input_ids=torch.tensor([[ord(c) - 97 for c in text]]))


class Bigram(nn.Module):
    """Next-token logits depend only on the current token: perplexity is the same for every window."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(table)
        self.config = SimpleNamespace(max_position_embeddings=4)

    def forward(self, input_ids):
        return SimpleNamespace(logits=self.table[input_ids])


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    model = Bigram(torch.zeros(5, 5))
    assert metrics.perplexity(model, CharTokenizer(), ["abcdeabcde"], stride=2) == pytest.approx(5.0)


def test_perplexity_hand_case_is_independent_of_window_and_stride():
    # V = 2 ("a", "b"). After "a": p(b) = 3/4 (logits [0, ln 3]); after "b": p(a) = p(b) = 1/2.
    # "abab": predict b|a (3/4), a|b (1/2), b|a (3/4): NLL = 2·ln(4/3) + ln 2 = 1.268511; ppl = exp(NLL/3) = 1.526285
    model = Bigram(torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]]))
    for max_length in (2, 3, 4):
        for stride in range(1, max_length):
            for batch_size in (1, 3):
                assert metrics.perplexity(model, CharTokenizer(), ["abab"], stride=stride, max_length=max_length,
                                          batch_size=batch_size) == pytest.approx(1.526285, abs=1e-5)


def test_batched_windows_give_the_unbatched_perplexity():
    torch.manual_seed(0)
    model = Bigram(torch.randn(6, 6))
    model.config.max_position_embeddings = 5
    text = ["abcdefabfedcbaaceb"]
    one = metrics.perplexity(model, CharTokenizer(), text, stride=2, max_length=5)
    assert metrics.perplexity(model, CharTokenizer(), text, stride=2, max_length=5, batch_size=4) == pytest.approx(one, rel=1e-6)
    assert metrics.perplexity_windows(7, 4, 2) == [(0, 4, 0), (2, 6, 1), (4, 7, 1)]


def test_perplexity_refuses_bad_input():
    model = Bigram(torch.zeros(2, 2))
    with pytest.raises(KdbenchError, match="non-empty"):
        metrics.perplexity(model, CharTokenizer(), [" "])
    with pytest.raises(KdbenchError, match="stride"):
        metrics.perplexity(model, CharTokenizer(), ["abab"], stride=4)  # = the window: tokens would go unscored


def test_rouge_takes_the_best_of_several_references():
    # "the cat sat" vs ["a dog", "the cat sat down"]: the second reference wins (F1 0.857143)
    assert metrics.rouge(["the cat sat"], [["a dog", "the cat sat down"]])["rouge1"] == pytest.approx(85.7143, abs=1e-3)
    with pytest.raises(KdbenchError, match="reference 0 is empty"):
        metrics.rouge(["x"], [["a", ""]])
