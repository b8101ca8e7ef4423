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


class Indexed(torch.utils.data.Dataset):
    """Training features that yield (index, feature): batches then say which examples they hold, so that
    cached teacher outputs (kdbench.teacher.cache) can be looked up by example."""

    def __init__(self, features: list[dict]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int):
        return i, self.features[i]


class WithIndex:
    """A collate function plus `example_index` `(B,)` in the batch (models never see it: see model_inputs)."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, rows: list) -> dict:
        batch = self.collate([feature for _, feature in rows])
        batch["example_index"] = torch.tensor([i for i, _ in rows], dtype=torch.long)
        return batch


def train_loader(features: list[dict], collate, batch_size: int, seed: int) -> DataLoader:
    sampler = LengthGroupedBatches([len(f["input_ids"]) for f in features], batch_size, seed)
    return DataLoader(Indexed(features), batch_sampler=sampler, collate_fn=WithIndex(collate))


def eval_loader(features: list[dict], collate: Collator, batch_size: int) -> tuple[DataLoader, list[int]]:
    """Batches sorted by length (less padding); returns the loader and the order to undo the sort."""
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    loader = DataLoader([features[i] for i in order], batch_size=batch_size, shuffle=False, collate_fn=collate)
    return loader, order


class LMCollator:
    """Causal-LM batches: pad ids, attention mask, −100 labels on padding, and position ids.

    Position ids count only real tokens (cumsum of the mask), so a left-padded row
    sees exactly the positions it would see right-padded.
    """

    def __init__(self, pad_id: int, padding_side: str = "right"):
        self.pad_id = pad_id
        self.left = padding_side == "left"

    def __call__(self, rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            span = slice(width - n, width) if self.left else slice(0, n)
            ids[i, span] = torch.tensor(r["input_ids"])
            mask[i, span] = 1
            labels[i, span] = torch.tensor(r["labels"])
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "position_ids": positions}


def lm_blocks(token_ids: list[int], block: int) -> list[dict]:
    """Cut a token stream into consecutive blocks of `block` tokens; every token is a target."""
    return [{"input_ids": token_ids[i : i + block], "labels": token_ids[i : i + block]}
            for i in range(0, len(token_ids) - 1, block) if len(token_ids[i : i + block]) > 1]


def prompt_response(tokenizer, prompt: str, response: str, max_length: int) -> dict:
    """One supervised example: loss on the response tokens (and EOS) only, never on the prompt.

    A prompt that leaves no room for a response within max_length is refused by the caller.
    """
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (p + r)[:max_length]
    labels = ([-100] * len(p) + r)[:max_length]
    return {"input_ids": ids, "labels": labels}
