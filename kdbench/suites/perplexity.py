"""Perplexity: token-level language modelling on WikiText-2, scored by sliding window.

    kdbench run suite=perplexity method=kd data_dir=../shared/data

Version history (bump when a number can move): 1: first release; 2: the last
data.val_examples blocks of the training text are held out for the learning curve.
Prompt format: none; plain text. The text is the WikiText-2 token file as
published (`wiki.*.tokens`, with its <unk> markers), whole; training cuts the
tokenised stream into blocks of train.max_length tokens, every token a target.
Distillation corpus: WikiText-2 train from the hub (`Salesforce/wikitext`,
`wikitext-2-v1`) when online; offline it is the local `wiki.valid.tokens`, and
the record's data notes say so. Eval: `wiki.test.tokens`, the first
eval.max_tokens tokens (0 = all), windows of eval.window advancing by
eval.stride. Perplexities are comparable only under the same tokenizer; the
record names it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from kdbench import metrics
from kdbench.suites.base import Suite, register_suite_kind
from kdbench.data.batching import LMCollator, lm_blocks, train_loader
from kdbench.data.hub import hub_offline
from kdbench.data.local import Split
from kdbench.files import file_sha256
from kdbench.errors import KdbenchError
from kdbench.models.load import load_causal_lm
from kdbench.models.placement import to_device
from kdbench.validation import batches

TASKS = {"wikitext2": "wikitext-2"}


@dataclass
class TextData:
    name: str
    train: Split  # examples: [whole text]
    evals: dict  # "test" -> Split
    max_blocks: int = 0  # data.max_train_examples: train on the first N blocks; 0 = all
    val_blocks: int = 0  # the last N blocks of the training text, held out for the learning curve
    train_ids: dict = field(default_factory=dict)  # {"key": tokenizer identity, "ids": the training text's token ids}
    num_labels: int = 0
    regression: bool = False
    notes: list = field(default_factory=list)


def _local_text(root: Path | None, filename: str) -> Split | None:
    if root is None:
        return None
    path = root / "wikitext-2" / filename
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise KdbenchError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise KdbenchError(f"{path}: empty file")
    return Split([text], str(path), file_sha256(path))


def _hub_text(split: str) -> Split:
    import datasets

    ds = datasets.load_dataset("Salesforce/wikitext", "wikitext-2-v1", split=split)
    return Split(["".join(ds["text"])], f"hub:Salesforce/wikitext/wikitext-2-v1/{split}", ds._fingerprint)


@register_suite_kind("perplexity")
class PerplexitySuite(Suite):
    samples_responses = True  # an on-policy method samples continuations (kdbench.rollouts)
    tasks = tuple(TASKS)
    label = "perplexity"

    def task_metrics(self, name: str) -> tuple:
        return ("perplexity",)

    def load(self, name: str, data_root: Path | None, max_train: int, max_eval: int) -> TextData:
        notes = []
        train = None
        if not hub_offline():
            try:
                train = _hub_text("train")
            except Exception as e:  # offline or unreachable: fall back to the local corpus below
                notes.append(f"hub WikiText-2 train unavailable ({type(e).__name__})")
        if train is None:
            train = _local_text(data_root, "wiki.valid.tokens")
            if train is None:
                raise KdbenchError(
                    "no WikiText-2 text to distil on: the hub is offline and there is no"
                    f" {data_root or '<data_root>'}/wikitext-2/wiki.valid.tokens; pass data_dir="
                )
            notes.append("distillation corpus: local wiki.valid.tokens (WikiText-2 train is not available offline)")
        test = _local_text(data_root, "wiki.test.tokens")
        if test is None:
            if hub_offline():
                raise KdbenchError(f"no {data_root or '<data_root>'}/wikitext-2/wiki.test.tokens and the hub is offline; pass data_dir=")
            test = _hub_text("test")
        return TextData(name, train, {"test": test}, max_blocks=max_train, notes=notes)

    def build_model(self, name: str, data: TextData, seed: int, cache_dir=None, attention_maps: bool = False):
        return load_causal_lm(name, seed=seed, eager=attention_maps, cache_dir=cache_dir)

    def hold_out(self, data: TextData, n: int) -> None:
        data.val_blocks = n  # the blocks depend on the tokenizer and train.max_length: cut in `blocks`

    def val_description(self, data: TextData) -> str:
        return f"the last {data.val_blocks} blocks of train.max_length tokens of the training text, held out"

    def blocks(self, tokenizer, data: TextData, max_length: int) -> tuple[list[dict], list[dict]]:
        """(training blocks, validation blocks): the training text cut into blocks of max_length tokens, the
        last data.val_blocks of them held out; then the first data.max_blocks of the rest (0 = all)."""
        key = (tokenizer.name_or_path, len(tokenizer))
        if data.train_ids.get("key") != key:  # tokenise the training text once per tokenizer, not per call
            data.train_ids = {"key": key, "ids": tokenizer(data.train.examples[0])["input_ids"]}
        blocks = lm_blocks(data.train_ids["ids"], max_length)
        if data.val_blocks >= len(blocks):
            raise KdbenchError(f"data.val_examples={data.val_blocks} would hold out all {len(blocks)} blocks of"
                               f" {max_length} tokens of {data.train.source}; choose fewer")
        train, val = blocks[: len(blocks) - data.val_blocks], blocks[len(blocks) - data.val_blocks:]
        return (train[: data.max_blocks] if data.max_blocks else train), val

    def train_loader(self, tokenizer, data: TextData, max_length: int, batch_size: int, seed: int, padding_side="right"):
        train, _ = self.blocks(tokenizer, data, max_length)
        return train_loader(train, LMCollator(tokenizer.pad_token_id, padding_side), batch_size, seed)

    def val_batches(self, tokenizer, data: TextData, cfg) -> tuple[list[dict], list[int]]:
        _, val = self.blocks(tokenizer, data, cfg.train.max_length)
        return batches(val, LMCollator(tokenizer.pad_token_id), cfg.eval.batch_size)

    def trivial(self, tokenizer, data: TextData, cfg) -> dict[str, dict[str, float]]:
        """The training blocks' unigram token model (add-one smoothing), on the tokens `evaluate` scores."""
        train, _ = self.blocks(tokenizer, data, cfg.train.max_length)
        eval_ids = tokenizer("\n\n".join(data.evals["test"].examples))["input_ids"]
        if cfg.eval.max_tokens:
            eval_ids = eval_ids[: cfg.eval.max_tokens]
        nll = metrics.unigram_nll([t for b in train for t in b["input_ids"]], eval_ids, len(tokenizer))
        return {"unigram (training tokens)": {"perplexity": math.exp(nll)}}

    def evaluate(self, model, tokenizer, data: TextData, cfg, device) -> tuple[dict, dict]:
        model = to_device(model, device)
        ppl = metrics.perplexity(model, tokenizer, data.evals["test"].examples, stride=cfg.eval.stride,
                                 max_length=cfg.eval.window, max_tokens=cfg.eval.max_tokens, progress=True,
                                 batch_size=cfg.eval.batch_size)
        return {"perplexity": ppl}, {}


    def diagnostics(self, student, teacher, tokenizer, data: TextData, cfg, device) -> dict[str, float]:
        """Top-k agreement and KL to the teacher on the first blocks of the test text (at most LM_EXAMPLES blocks,
        within the eval.max_tokens that perplexity scores)."""
        from kdbench.diagnostics import LM_EXAMPLES, language_model

        if not data.evals or not data.evals.get("test") or not data.evals["test"].examples:
            return {}
        ids = tokenizer("\n\n".join(data.evals["test"].examples))["input_ids"]
        tokens = LM_EXAMPLES * cfg.train.max_length  # the tokens perplexity scores, at most LM_EXAMPLES blocks
        blocks = lm_blocks(ids[: min(tokens, cfg.eval.max_tokens or tokens)], cfg.train.max_length)
        loader = train_loader(blocks, LMCollator(tokenizer.pad_token_id, cfg.data.padding_side), cfg.eval.batch_size, 0)
        return language_model(student, teacher, loader, device)

