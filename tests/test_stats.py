"""Confidence intervals and paired-bootstrap p-values against hand-computed cases."""

import json
import math

import numpy as np
import pytest

from kdbench import metrics
from kdbench.stats import (MDE_FACTOR, bootstrap_p, compare, holm, mean_ci, paired_bootstrap, resample_indices,
                           resampled_scores, resamples_for, seed_draws, two_level)


def test_mean_ci_on_a_known_sample():
    # 1, 2, 3: mean 2, s = 1, t(0.975, df=2) = 4.302653 → half-width 4.302653 / √3 = 2.484138
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.302653 / math.sqrt(3), abs=1e-5)


def test_mean_ci_of_two_values():
    # 10, 12: s = √2, t(0.975, 1) = 12.706205 → 12.706205 · √2 / √2 = 12.706205
    assert mean_ci([10.0, 12.0])[1] == pytest.approx(12.706205, abs=1e-5)


def test_one_seed_has_no_interval_and_none_is_an_error():
    assert mean_ci([5.0]) == (5.0, None, 1)
    with pytest.raises(ValueError):
        mean_ci([])


def test_identical_predictions_give_p_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    preds = rng.integers(0, 2, 300)
    idx = resample_indices(300, 1000, seed=0)
    a = resampled_scores("accuracy", [preds], labels, idx)
    assert paired_bootstrap(a, a.copy()) == 1.0


def test_clearly_better_method_gives_p_near_zero():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    good = np.where(rng.random(400) < 0.9, labels, 1 - labels)  # ~90% right
    bad = np.where(rng.random(400) < 0.6, labels, 1 - labels)  # ~60% right
    idx = resample_indices(400, 1000, seed=0)
    p = paired_bootstrap(resampled_scores("accuracy", [good], labels, idx),
                         resampled_scores("accuracy", [bad], labels, idx))
    assert p < 0.01


def test_small_difference_is_not_significant():
    # the systems differ on 2 of 200 examples, one each way: Δ = 0 on the full set
    labels = np.zeros(200, dtype=int)
    a, b = labels.copy(), labels.copy()
    a[0], b[1] = 1, 1
    idx = resample_indices(200, 2000, seed=3)
    assert paired_bootstrap(resampled_scores("accuracy", [a], labels, idx),
                            resampled_scores("accuracy", [b], labels, idx)) > 0.5


def test_p_value_by_hand():
    # Δ* = (+1, +1, +1, -1): #{Δ ≤ 0} = 1, #{Δ ≥ 0} = 3 → p = 2 · (1 + 1) / (4 + 1) = 0.8
    assert paired_bootstrap(np.array([2.0, 2, 2, 0]), np.array([1.0, 1, 1, 1])) == pytest.approx(0.8)
    # no resample on the other side: the smallest p is 2/(B+1), never 0
    assert bootstrap_p(np.ones(999)) == pytest.approx(2 / 1000)


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04, 0.30 (m = 4): 4·0.01 = 0.04, 3·0.02 = 0.06, 2·0.04 = 0.08, 1·0.30 = 0.30
    assert holm([0.04, 0.30, 0.01, 0.02]) == pytest.approx([0.08, 0.30, 0.04, 0.06])
    # step-down monotonicity: a larger raw p never gets a smaller adjusted p
    assert holm([0.010, 0.011, 0.5]) == pytest.approx([0.03, 0.03, 0.5])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2·0.8 capped at 1; 0.9 cannot fall below it


def test_resamples_grow_with_the_holm_family():
    # B + 1 ≥ 10·m/0.05 = 200·m, rounded up to a thousand, at least 1,000
    assert [resamples_for(m) for m in (0, 1, 5, 6, 7, 20, 30)] == [1000, 1000, 1000, 2000, 2000, 4000, 6000]


@pytest.mark.parametrize("tests", [3, 20, 25, 26, 30, 60, 200])
def test_a_table_of_decisive_effects_passes_holm_at_any_width(tests):
    # every test's resampled differences on one side of zero: each p is the floor 2/(B+1)
    decisive = bootstrap_p(np.ones(resamples_for(tests)))
    assert max(holm([decisive] * tests)) <= 0.05 / 5
    # the fixed B = 1,000 this replaced: from 26 tests on (26·2/1001 > 0.05), no effect could pass
    fixed = holm([bootstrap_p(np.ones(1000))] * tests)
    assert (max(fixed) < 0.05) == (tests <= 25)


def test_seed_draws_pair_by_seed_and_two_level_picks_the_drawn_runs():
    choice_a, choice_b, paired = seed_draws([0, 1, 2], [2, 0, 1], 50, seed=0)
    assert paired and choice_a.shape == (50, 3)
    assert all([0, 1, 2][i] == [2, 0, 1][j] for i, j in zip(choice_a.ravel(), choice_b.ravel()))  # same seed
    assert not seed_draws([0, 1, 2], [0, 1, 3], 5, seed=0)[2]
    # values (runs, positions, B): run r at position j scores 10·r + j on every resample
    values = np.array([[[10.0 * r + j] * 2 for j in range(2)] for r in range(3)])
    choice = np.array([[0, 2], [1, 1]])  # resample 0: run 0 at j=0, run 2 at j=1; resample 1: run 1 twice
    assert two_level(values, choice).tolist() == [(0 + 21) / 2, (10 + 11) / 2]


def test_compare_refuses_fewer_than_three_seeds_and_reports_the_effect():
    delta_star = np.random.default_rng(0).normal(1.0, 0.5, 1000)
    few = compare(delta_star, 1.0, (2, 3), True)
    assert few.p is None and few.low is None and "fewer than 3 seeds (n=2 vs 3)" in few.reason and few.delta == 1.0
    out = compare(delta_star, 1.0, (3, 3), True)
    assert out.low < 1.0 < out.high and out.high - out.low == pytest.approx(2 * 1.96 * 0.5, rel=0.1)
    assert out.p == pytest.approx(2 * (np.sum(delta_star <= 0) + 1) / 1001) and out.sd == pytest.approx(0.5, rel=0.1)
    assert MDE_FACTOR == pytest.approx(1.959964 + 0.841621, abs=1e-5)


IDENTITY = np.arange(6)[None, :]


@pytest.mark.parametrize("name", ["accuracy", "f1", "mcc"])
def test_resampled_classification_metrics_equal_the_metric_on_the_full_set(name):
    preds, labels = [1, 0, 1, 1, 0, 0], [1, 0, 0, 1, 1, 0]
    full = getattr(metrics, name)(preds, labels)
    assert resampled_scores(name, [preds], labels, IDENTITY)[0] == pytest.approx(full)


@pytest.mark.parametrize("name", ["pearson", "spearman"])
def test_resampled_correlations_equal_scipy(name):
    preds, labels = [0.1, 2.0, 1.5, 3.3, 3.3, 0.7], [0.0, 2.5, 1.0, 4.0, 3.0, 1.0]
    full = getattr(metrics, name)(preds, labels)
    assert resampled_scores(name, [preds], labels, IDENTITY)[0] == pytest.approx(full, abs=1e-9)


def test_resampled_mcc_of_a_constant_resample_is_zero():
    assert resampled_scores("mcc", [[1, 1, 1]], [1, 1, 1], np.arange(3)[None, :])[0] == 0.0


def test_mnli_split_metrics_resample_as_their_metric():
    assert resampled_scores("accuracy_mismatched", [[1, 0]], [1, 1], np.arange(2)[None, :])[0] == 50.0


PREDS = ["the cat sat on the mat", "a dog runs in the park today", "hello there"]
REFS = ["the cat sat on a mat", "a dog runs in the park", "hello world"]


def test_resampled_bleu_is_corpus_bleu_from_summed_statistics():
    full = metrics.bleu(PREDS, REFS)
    assert resampled_scores("bleu", [PREDS], REFS, np.arange(3)[None, :])[0] == pytest.approx(full, abs=1e-9)
    # corpus BLEU is not the mean of sentence BLEUs
    sentence_mean = np.mean([metrics.bleu([p], [r]) for p, r in zip(PREDS, REFS)])
    assert abs(full - sentence_mean) > 1.0


def test_resampled_bleu_matches_corpus_bleu_without_any_4gram_match():
    # no 4-gram matches anywhere: corpus BLEU is small but not 0 (sacrebleu's exp smoothing)
    preds, refs = ["ein hund laeuft", "zwei katzen schlafen hier"], ["ein hund rennt schnell", "zwei katzen liegen"]
    full = metrics.bleu(preds, refs)
    assert full > 0
    assert resampled_scores("bleu", [preds], refs, np.arange(2)[None, :])[0] == pytest.approx(full, abs=1e-9)


def test_resampled_cer_is_total_edits_over_total_reference_characters():
    full = metrics.cer(PREDS, REFS)
    assert resampled_scores("cer", [PREDS], REFS, np.arange(3)[None, :])[0] == pytest.approx(full, abs=1e-9)
    # a resample that repeats an example counts its edits and characters twice
    twice_first = resampled_scores("cer", [PREDS], REFS, np.array([[0, 0, 2]]))[0]
    assert twice_first == pytest.approx(metrics.cer([PREDS[0], PREDS[0], PREDS[2]], [REFS[0], REFS[0], REFS[2]]))


def test_resampled_rouge_is_the_mean_of_example_scores():
    refs = [[r] for r in REFS]
    full = metrics.rouge(PREDS, refs)["rougeL"]
    assert resampled_scores("rougeL", [PREDS], refs, np.arange(3)[None, :])[0] == pytest.approx(full)


def test_runs_of_one_system_are_averaged():
    labels = [1, 1, 1, 1]
    runs = [[1, 1, 1, 1], [1, 1, 0, 0]]  # 100 and 50
    assert resampled_scores("accuracy", runs, labels, np.arange(4)[None, :])[0] == 75.0


def test_a_run_level_score_without_per_example_outputs_is_compared_over_seeds():
    """The perplexity suite keeps one perplexity per run, no per-example outputs: the leaderboard still tests
    kd against none there, by drawing seeds alone (the example level has nothing to resample)."""
    from kdbench.comparisons import Comparisons
    from kdbench.leaderboard import MethodRow

    def row(method, values):
        runs = [{"seed": s, "run_id": f"{method}-{s}", "metrics": {"wikitext2": {"perplexity": v}}}
                for s, v in enumerate(values)]
        return MethodRow(method, runs, {"wikitext2": {"perplexity": (float(np.mean(values)), None, 3)}}, None)

    rows = [row("none", [134.1, 137.8, 138.6]), row("kd", [122.6, 119.6, 124.7])]
    compare_them = Comparisons(rows, ["wikitext2"], 1000)
    result = compare_them.pair("kd", "none", False)["wikitext2"]
    assert result.delta == pytest.approx(np.mean([122.6, 119.6, 124.7]) - np.mean([134.1, 137.8, 138.6]))
    assert result.high < 0 and result.p < 0.05  # every seed pair has kd lower
    assert compare_them.seeds_only == {"wikitext2"} and compare_them.compared == {"wikitext2": ["perplexity"]}
    two = [MethodRow(r.method, r.runs, {"wikitext2": {"loss": (1.0, None, 3), "perplexity": (2.0, None, 3)}}, None)
           for r in rows]  # loss and perplexity do not average: the first is the task's headline, and runs lack it
    assert Comparisons(two, ["wikitext2"], 1000).pair("kd", "none", False)["wikitext2"] == "no loss for wikitext2 in kd-0"


def test_a_char_task_is_compared_on_its_loss_not_on_the_cer_its_examples_file_holds(tmp_path):
    """The char suite's examples file holds the continuations (CER), its record the test loss: Δ is the loss,
    the task's headline, over seeds, and the note says what is shown beside it."""
    from kdbench.comparisons import Comparisons
    from kdbench.leaderboard import MethodRow

    losses = {"none": [1.930, 1.914, 1.921, 1.920, 1.903], "fakd": [1.881, 1.908, 1.888, 1.893, 1.894]}
    records = []
    for method, values in losses.items():
        for seed, loss in enumerate(values):
            examples = tmp_path / "examples" / f"{method}-{seed}.json"
            examples.parent.mkdir(exist_ok=True)
            # the CER goes the other way from the loss (fakd writes worse continuations), so the test shows which
            # one Δ compares
            preds = ["to be or not"] * 4 if method == "none" else ["xx yy zz"] * 4
            examples.write_text(json.dumps({"shakespeare": {"test": {"metrics": ["cer"], "references": ["to be or not"] * 4,
                                                                       "predictions": {"greedy": preds}}}}))
            records.append({"seed": seed, "run_id": f"{method}-{seed}", "method": method,
                            "_path": str(tmp_path / f"{method}-{seed}.json"), "examples_file": f"examples/{examples.name}",
                            "metrics": {"shakespeare": {"loss": loss, "perplexity": float(np.exp(loss)), "cer": 80.0}}})
    rows = [MethodRow(m, [r for r in records if r["method"] == m],
                      {"shakespeare": {"loss": (float(np.mean(v)), None, 5), "perplexity": (1.0, None, 5),
                                       "cer": (80.0, None, 5)}}, None) for m, v in losses.items()]
    compare_them = Comparisons(rows, ["shakespeare"], 1000)
    result = compare_them.pair("fakd", "none", False)["shakespeare"]
    assert result.delta == pytest.approx(np.mean(losses["fakd"]) - np.mean(losses["none"]))
    assert result.high < 0  # fakd's loss is lower on every seed; its CER would have come out higher
    assert compare_them.compared == {"shakespeare": ["loss"]} and compare_them.seeds_only == {"shakespeare"}


def test_a_difference_is_printed_with_two_significant_digits_of_its_interval():
    """A char loss moves by hundredths of a nat: at two decimals "+0.01 [-0.00, +0.03]" hid the result."""
    from kdbench.leaderboard_render import delta_digits, fmt_comparison

    assert [delta_digits(w) for w in (3.0, 0.5, 0.03, 0.004, 1e-6, 0.0)] == [2, 2, 3, 4, 4, 2]
    small = compare(np.array([0.01, 0.02, 0.03, 0.015] * 250), 0.0134, (5, 5), True)
    assert fmt_comparison(small).startswith("+0.013 [+0.0")
    large = compare(np.array([1.0, 2.0, 3.0, 1.5] * 250), 1.234, (5, 5), True)
    assert fmt_comparison(large).startswith("+1.23 [+1.00, +3.00]")
