"""benchmarks/protocol_cost.py: how a measured slice scales to the whole MiniLLM protocol."""

import pytest

from tests.conftest import benchmark_module


def _module():
    return benchmark_module("protocol_cost")


def test_a_slice_scales_by_batches_to_every_row_and_five_seeds():
    cost = _module()
    # 16 rows x 2 seeds = 2 batches of 16 in 300 s; Vicuna's 80 rows are 5 batches, x 5 seeds = 25 batches
    seconds, measured = cost.whole_protocol_seconds(300.0, 16, ["10", "20"], 80, 16)
    assert (seconds, measured) == (pytest.approx(3750.0), False)
    # a partial last batch costs a whole batch: 242 rows are 16 batches (15 full and one of 2)
    assert cost.whole_protocol_seconds(10.0, 16, ["10"], 242, 16)[0] == pytest.approx(10.0 * 16 * 5)


def test_the_whole_set_under_the_five_seeds_is_reported_as_measured():
    cost = _module()
    assert cost.whole_protocol_seconds(123.0, 80, ["50", "40", "30", "20", "10"], 80, 16) == (123.0, True)
    assert cost.whole_protocol_seconds(123.0, 80, ["10"], 80, 16)[1] is False
    # every row and seed, but at another token cap or batch: scaled, not the protocol's measured cost
    assert cost.whole_protocol_seconds(123.0, 80, ["10", "20", "30", "40", "50"], 80, 16, False)[1] is False


def test_an_answer_counts_its_tokens_up_to_and_including_its_first_eos():
    torch = pytest.importorskip("torch")
    cost = _module()
    eos = 2
    new_ids = torch.tensor([[5, 6, 2, 2, 2],    # EOS at step 3, then padding (pad = EOS): 3 tokens
                            [5, 6, 7, 8, 9],    # ran to the cap: 5
                            [2, 2, 2, 2, 2]])   # EOS first: 1
    assert cost.answer_tokens(new_ids, eos) == 3 + 5 + 1
