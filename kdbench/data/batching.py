"""Tokenise examples once, then pad each batch only to its own longest row (dynamic padding)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader


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


def train_loader(features: list[dict], collate: Collator, batch_size: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(features, batch_size=batch_size, shuffle=True, drop_last=len(features) > batch_size,
                      collate_fn=collate, generator=generator)


def eval_loader(features: list[dict], collate: Collator, batch_size: int) -> tuple[DataLoader, list[int]]:
    """Batches sorted by length (less padding); returns the loader and the order to undo the sort."""
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    loader = DataLoader([features[i] for i in order], batch_size=batch_size, shuffle=False, collate_fn=collate)
    return loader, order
