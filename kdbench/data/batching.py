"""Tokenise examples once, then pad each batch only to its own longest row (dynamic padding)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Sampler


def encode(tokenizer, examples: list, max_length: int) -> list[dict]:
    """Token ids per example (no padding), with the label."""
    text_a = [e.text_a for e in examples]
    pairs = examples and examples[0].text_b is not None
    text_b = [e.text_b for e in examples] if pairs else None
    enc = tokenizer(text_a, text_b, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
    return [{**{k: enc[k][i] for k in keys}, "labels": e.label} for i, e in enumerate(examples)]


class Collator:
    def __init__(self, pad_id: int, regression: bool):
        self.pad_id = pad_id
        self.label_dtype = torch.float32 if regression else torch.long

    def __call__(self, rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long) if "token_type_ids" in rows[0] else None
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            mask[i, :n] = 1
            if types is not None:
                types[i, :n] = torch.tensor(r["token_type_ids"])
        batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([r["labels"] for r in rows], dtype=self.label_dtype)}
        if types is not None:
            batch["token_type_ids"] = types
        return batch


class LengthGroupedBatches(Sampler):
    """Random batches of similar length: less padding, the same data in a seeded random order.

    Each epoch shuffles all rows, cuts them into windows of `window` batches,
    sorts each window by length and cuts it into batches, then shuffles the
    batches. Rows of one batch have similar lengths, so dynamic padding wastes
    little compute; the order is still random and is fixed by (seed, epoch).
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, window: int = 50):
        self.lengths, self.batch_size, self.seed, self.window = lengths, batch_size, seed, window
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        span = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start : start + span], key=lambda i: self.lengths[i], reverse=True)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for b in torch.randperm(len(batches), generator=g).tolist():
            yield batches[b]


def train_loader(features: list[dict], collate: Collator, batch_size: int, seed: int) -> DataLoader:
    sampler = LengthGroupedBatches([len(f["input_ids"]) for f in features], batch_size, seed)
    return DataLoader(features, batch_sampler=sampler, collate_fn=collate)


def eval_loader(features: list[dict], collate: Collator, batch_size: int) -> tuple[DataLoader, list[int]]:
    """Batches sorted by length (less padding); returns the loader and the order to undo the sort."""
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    loader = DataLoader([features[i] for i in order], batch_size=batch_size, shuffle=False, collate_fn=collate)
    return loader, order
