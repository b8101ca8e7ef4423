"""Length-grouped batches: every row once per epoch, seeded, less padding than random batches."""

import torch

from kdbench.data.batching import Collator, LengthGroupedBatches


def test_each_epoch_covers_every_row_once_in_a_seeded_order():
    lengths = [int(x) for x in torch.randint(1, 60, (1000,), generator=torch.Generator().manual_seed(0))]
    a, b = LengthGroupedBatches(lengths, 32, seed=1, window=4), LengthGroupedBatches(lengths, 32, seed=1, window=4)
    first, again = list(a), list(b)
    assert first == again  # same seed, same order
    assert sorted(i for batch in first for i in batch) == list(range(1000))
    assert list(a) != first  # the next epoch is reshuffled
    assert list(LengthGroupedBatches(lengths, 32, seed=2, window=4)) != first


def test_grouping_reduces_padding():
    lengths = [int(x) for x in torch.randint(1, 60, (2000,), generator=torch.Generator().manual_seed(0))]
    padded = sum(max(lengths[i] for i in b) * len(b) for b in LengthGroupedBatches(lengths, 32, seed=0))
    perm = torch.randperm(2000, generator=torch.Generator().manual_seed(0)).tolist()
    random_padded = sum(max(lengths[i] for i in perm[j:j + 32]) * 32 for j in range(0, 2000, 32))
    assert padded < 0.7 * random_padded


def test_collator_pads_to_the_longest_row_of_the_batch():
    batch = Collator(pad_id=0, regression=False)([
        {"input_ids": [5, 6, 7], "token_type_ids": [0, 0, 1], "labels": 1},
        {"input_ids": [8], "token_type_ids": [0], "labels": 0},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1], [0, 0, 0]]
    assert batch["labels"].dtype == torch.long
