"""The validation slice behind every learning curve: rows held out of the training data, and scoring on it.

    kdbench run suite=glue method=kd data.val_examples=256 eval_every=50

The slice is carved from the *training* split with a fixed seed (`VAL_SEED`), the same for every method,
student seed and teacher, so curves are comparable across a sweep; the held-out rows never train anyone
(teacher or student), and the dev/test split the leaderboard reports is never looked at during training.
Row suites (GLUE, generation) hold out `data.val_examples` rows; text suites (perplexity, char) hold out
the last `data.val_examples` blocks of `train.max_length` tokens of their training text.
"""

from __future__ import annotations

import random

import torch

from kdbench.data.local import Split
from kdbench.errors import KdbenchError

VAL_SEED = 20261130  # fixed: the slice must not move with the student's seed


def carve(split: Split, n: int, what: str = "training rows") -> tuple[Split, Split | None]:
    """(train without the held-out rows, the held-out rows), both in their original order; n = 0: no slice."""
    rows = split.examples
    if n <= 0:
        return split, None
    if n >= len(rows):
        raise KdbenchError(f"data.val_examples={n} would hold out all {len(rows)} {what} of {split.source};"
                           f" choose data.val_examples<{len(rows)}")
    held = set(random.Random(VAL_SEED).sample(range(len(rows)), n))
    val = Split([r for i, r in enumerate(rows) if i in held], f"{split.source} [validation: {n} held-out rows]",
                f"{split.sha256}/val{n}")
    train = Split([r for i, r in enumerate(rows) if i not in held], split.source, f"{split.sha256}/minus-val{n}")
    return train, val


def batches(features: list[dict], collate, batch_size: int) -> tuple[list[dict], list[int]]:
    """Collated batches sorted by length (less padding) and the order that undoes the sort.

    A plain list, not a DataLoader: creating a DataLoader iterator draws a seed from the global RNG, and
    scoring in the middle of training must not move the training's random streams.
    """
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    rows = [features[i] for i in order]
    return [collate(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)], order


@torch.no_grad()
def loss_and_outputs(model, val_batches: list[dict], device, regression: bool) -> tuple[float, list[torch.Tensor]]:
    """Mean supervised loss over the labelled positions (CE, or MSE for a regression head) and, for
    classifier-shaped outputs, the logits of every batch (for the suite's metrics)."""
    from kdbench.methods.base import supervised_loss
    from kdbench.runner import make_step, model_inputs

    total, count, logits = 0.0, 0, []
    for batch in val_batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        step = make_step(model(**model_inputs(batch)), None, batch, regression)
        labelled = int((step.labels != -100).sum()) if step.labels.dim() > 1 else step.labels.shape[0]
        total += float(supervised_loss(step)) * labelled
        count += labelled
        if step.labels.dim() == 1:
            logits.append(step.student.logits.float().cpu())
    return (total / count if count else 0.0), logits


def validator(suite, tokenizer, data, cfg, device):
    """validate(model) → (validation loss, {metric: value}) on the task's held-out slice (kdbench.validation)."""
    val, order = suite.val_batches(tokenizer, data, cfg)
    index = torch.tensor(order, dtype=torch.long)

    def validate(model):
        loss, logits = loss_and_outputs(model, val, device, data.regression)
        if not logits:
            return loss, {}
        stacked = torch.cat(logits)
        unsorted = torch.empty_like(stacked)
        unsorted[index] = stacked
        return loss, suite.val_metrics(data, unsorted)

    return validate


@torch.no_grad()
def predict(model: torch.nn.Module, loader, device) -> torch.Tensor:
    """Logits `(N, C)` for every example of `loader`, in the loader's order."""
    from kdbench.models.placement import to_device
    from kdbench.runner import model_inputs

    model = to_device(model, device).eval()
    out = []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out.append(model(**model_inputs(batch)).logits.float().cpu())
    return torch.cat(out) if out else torch.empty(0)
