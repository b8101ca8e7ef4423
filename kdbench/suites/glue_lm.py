"""GLUE through causal LMs: a prompt per example, the label as a word, the answer position's distribution.

    kdbench run suite=glue method=rlkd data_dir=../shared/data

Version history (bump when a number can move): 1: first release.
Every example becomes a prompt ending in "Answer:"; the label is a word (the verbalizer) that follows the
prompt after one space, as in lm-eval's GLUE tasks. The model reads the prompt and its distribution at
the answer position (the next-token distribution after the prompt's last token) covers the whole
vocabulary: that is the distribution every method distils (RLKD ranks its top-k there), and the
supervised loss is the CE of the label word's token. Scores come from the label words' logits only, the
way lm-eval scores a multiple-choice GLUE task: the class is the label word with the highest logit.

STS-B (a score in [0, 5]): the label words are the digits 0–5, the prediction is the expected value
Σ_d d · softmax(z_0, …, z_5)_d over the six digits' logits, and the training target spreads the gold
score over its two neighbouring digits (3.6 → 0.4 on "3", 0.6 on "4"), whose expected value is the score.

Prompts (lm-eval's GLUE templates; kdbench adds MRPC's twin for QQP's wording and STS-B's):
  sst2  "{sentence}\\nQuestion: Is this sentence positive or negative?\\nAnswer:"  negative | positive
  mrpc  "Sentence 1: {a}\\nSentence 2: {b}\\nQuestion: Do both sentences mean the same thing?\\nAnswer:"  no | yes
  qqp   "Question 1: {a}\\nQuestion 2: {b}\\nQuestion: Do both questions ask the same thing?\\nAnswer:"  no | yes
  cola  "{sentence}\\nQuestion: Does this sentence make sense?\\nAnswer:"  no | yes
  rte   "{a}\\nQuestion: {b} True or False?\\nAnswer:"  True | False
  wnli  "{a}\\nQuestion: {b} True or False?\\nAnswer:"  False | True
  qnli  "{a}\\n{b}\\nQuestion: Does this response answer the question?\\nAnswer:"  yes | no
  mnli  "{a}\\nQuestion: {b} True, False or Neither?\\nAnswer:"  True | Neither | False
  stsb  "Sentence 1: {a}\\nSentence 2: {b}\\nQuestion: How similar are the two sentences, from 0 to 5?\\nAnswer:"  0 … 5
`data.verbalizer=[bad,good]` replaces one task's label words (in label order). A label word must be ONE
token after the prompt: a word the tokenizer splits is refused, naming it and its pieces (kdbench does
not score multi-token words). A tokenizer may put the separating space in a token of its own (SmolLM2
writes " 3" as " " + "3"); the space then ends the prompt and the word is the next token.
Prompts longer than train.max_length keep their last max_length tokens (the question and the answer
position are never cut).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from kdbench.suites.base import register_suite_kind
from kdbench.errors import KdbenchError
from kdbench.models.load import load_causal_lm
from kdbench.metric_specs import compute
from kdbench.suites.glue import GlueSuite, TaskData

PROMPTS = {
    "sst2": "{a}\nQuestion: Is this sentence positive or negative?\nAnswer:",
    "mrpc": "Sentence 1: {a}\nSentence 2: {b}\nQuestion: Do both sentences mean the same thing?\nAnswer:",
    "qqp": "Question 1: {a}\nQuestion 2: {b}\nQuestion: Do both questions ask the same thing?\nAnswer:",
    "cola": "{a}\nQuestion: Does this sentence make sense?\nAnswer:",
    "rte": "{a}\nQuestion: {b} True or False?\nAnswer:",
    "wnli": "{a}\nQuestion: {b} True or False?\nAnswer:",
    "qnli": "{a}\n{b}\nQuestion: Does this response answer the question?\nAnswer:",
    "mnli": "{a}\nQuestion: {b} True, False or Neither?\nAnswer:",
    "stsb": "Sentence 1: {a}\nSentence 2: {b}\nQuestion: How similar are the two sentences, from 0 to 5?\nAnswer:",
}
# label words in label order (kdbench.data.glue_tasks: the label tuples' order)
WORDS = {
    "sst2": ("negative", "positive"), "mrpc": ("no", "yes"), "qqp": ("no", "yes"), "cola": ("no", "yes"),
    "rte": ("True", "False"), "wnli": ("False", "True"), "qnli": ("yes", "no"),
    "mnli": ("True", "Neither", "False"), "stsb": ("0", "1", "2", "3", "4", "5"),
}
SEPARATOR = " "  # between "Answer:" and the label word


class AnswerLM(nn.Module):
    """A causal LM read at the answer position: `logits` `(B, V)` of the token after each row's last real
    token (right padding), with the LM head applied at that position only; hidden states and attention
    maps of the whole prompt when asked for (feature-alignment KD)."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self.config = lm.config

    def forward(self, input_ids, attention_mask, position_ids=None, output_hidden_states=False,
                output_attentions=False, **_):
        out = self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                    output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        last = attention_mask.long().sum(-1) - 1
        hidden = out.last_hidden_state[torch.arange(input_ids.shape[0], device=input_ids.device), last]
        return SimpleNamespace(logits=self.lm.get_output_embeddings()(hidden),
                               hidden_states=out.hidden_states if output_hidden_states else None,
                               attentions=out.attentions if output_attentions else None)

    def set_attn_implementation(self, implementation: str) -> None:
        self.lm.set_attn_implementation(implementation)

    def save_pretrained(self, path, **kwargs) -> None:
        self.lm.save_pretrained(path, **kwargs)


@dataclass
class GlueLMData(TaskData):
    """A GLUE task in the causal-LM form: the distilled outputs are the vocabulary at the answer position."""

    words: tuple = ()  # label words, in label order
    label_ids: list = field(default_factory=list)  # their token ids (set when the examples are encoded)
    answer_position: bool = True

    @property
    def regression(self) -> bool:  # the outputs are a distribution over the vocabulary, even for STS-B
        return False


def verbalize(tokenizer, task: str, words: tuple[str, ...]) -> tuple[int, list[int]]:
    """(how many tokens of `prompt + separator` the input keeps beyond the prompt, the label words' token ids).

    Refuses a word the tokenizer does not map to one token after the prompt, and words whose prompts
    tokenize differently (the model must see the same input whatever the label)."""
    probe = PROMPTS[task].format(a="x", b="y")
    base = tokenizer(probe, add_special_tokens=False)["input_ids"]
    spaced = tokenizer(probe + SEPARATOR, add_special_tokens=False)["input_ids"]
    ids, extra = [], set()
    for word in words:
        full = tokenizer(probe + SEPARATOR + word, add_special_tokens=False)["input_ids"]
        if full[:-1] == base:
            extra.add(0)
        elif full[:-1] == spaced and spaced[: len(base)] == base:
            extra.add(len(spaced) - len(base))
        else:
            pieces = [tokenizer.decode([i]) for i in full[len(base):]]
            raise KdbenchError(f"label word {word!r} of {task} is not one token after the prompt (the tokenizer"
                               f" writes it as {pieces}); choose single-token words with data.verbalizer=[...]")
        ids.append(full[-1])
    if len(extra) > 1:
        raise KdbenchError(f"the label words {list(words)} of {task} tokenize differently after the prompt; choose"
                           " words that all start a new token")
    if len(set(ids)) != len(ids):
        raise KdbenchError(f"the label words {list(words)} of {task} share a token; choose distinct words")
    return extra.pop(), ids


def two_hot(score: float, digits: int) -> tuple[list[int], list[float]]:
    """A score in [0, digits − 1] spread over its two neighbouring digits: (indices, weights), expected value = score."""
    score = min(max(score, 0.0), digits - 1.0)
    low = min(int(math.floor(score)), digits - 2)
    high_weight = score - low
    return [low, low + 1], [1.0 - high_weight, high_weight]


class GlueLMCollator:
    """Right-padded prompts; `labels` `(B,)` = the label word's token id (STS-B: the nearest digit's), and for
    STS-B `target_ids`/`target_weights` `(B, 2)`: the two-hot target over the neighbouring digits."""

    def __init__(self, pad_id: int, soft: bool):
        self.pad_id, self.soft = pad_id, soft

    def __call__(self, rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
        batch = {"input_ids": ids, "attention_mask": mask,
                 "labels": torch.tensor([r["labels"] for r in rows], dtype=torch.long)}
        if self.soft:
            batch["target_ids"] = torch.tensor([r["target_ids"] for r in rows], dtype=torch.long)
            batch["target_weights"] = torch.tensor([r["target_weights"] for r in rows], dtype=torch.float32)
        return batch


@register_suite_kind("glue_lm")
class GlueLMSuite(GlueSuite):
    """The GLUE tasks scored through a causal LM's answer-position distribution."""

    verbalizer: tuple[str, ...] = ()  # data.verbalizer: one task's label words; empty = WORDS

    def configure(self, cfg) -> None:
        """Take data.verbalizer: one task's label words, as many as it has labels."""
        self.verbalizer = tuple(cfg.data.verbalizer)
        tasks = list(cfg.tasks)
        if not self.verbalizer:
            return
        if len(tasks) != 1:
            raise KdbenchError("data.verbalizer gives the label words of one task; pass that task alone, e.g."
                               f" tasks=[sst2] (tasks now: {tasks or 'the suite default'})")
        expected = len(WORDS[tasks[0]])
        if len(self.verbalizer) != expected:
            raise KdbenchError(f"data.verbalizer has {len(self.verbalizer)} words but {tasks[0]} has {expected} labels"
                               f" (its default: {list(WORDS[tasks[0]])})")

    def words(self, task: str) -> tuple[str, ...]:
        return self.verbalizer or WORDS[task]

    def check_tokenizer(self, tokenizer_of, tasks) -> None:
        """Every task's label words are single tokens after its prompt (before any model loads)."""
        tokenizer = tokenizer_of()
        for task in tasks:
            verbalize(tokenizer, task, self.words(task))

    def load(self, name: str, data_root: Path | None, max_train: int, max_eval: int) -> GlueLMData:
        plain = super().load(name, data_root, max_train, max_eval)
        return GlueLMData(plain.task, plain.train, plain.evals, words=self.words(name))

    def build_model(self, name: str, data: GlueLMData, seed: int, cache_dir=None, attention_maps: bool = False):
        return AnswerLM(load_causal_lm(name, seed=seed, eager=attention_maps, cache_dir=cache_dir))

    def adapt(self, model: nn.Module) -> nn.Module:
        """A causal LM loaded from the teacher cache, read at the answer position."""
        return model if isinstance(model, AnswerLM) else AnswerLM(model)

    def encode(self, tokenizer, data: GlueLMData, examples: list, max_length: int) -> list[dict]:
        extra, label_ids = verbalize(tokenizer, data.name, data.words)
        data.label_ids = label_ids
        soft = data.task.regression
        template = PROMPTS[data.name]
        prompts = [template.format(a=e.text_a, b=e.text_b) + (SEPARATOR if extra else "") for e in examples]
        encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        rows = []
        for e, ids in zip(examples, encoded):
            row = {"input_ids": ids[-max_length:]}  # keep the end: the question and the answer position
            if soft:
                index, weights = two_hot(float(e.label), len(label_ids))
                row.update(labels=label_ids[index[0] if weights[0] >= weights[1] else index[1]],
                           target_ids=[label_ids[i] for i in index], target_weights=weights)
            else:
                row["labels"] = label_ids[int(e.label)]
            rows.append(row)
        return rows

    def collator(self, tokenizer, data: GlueLMData):
        return GlueLMCollator(tokenizer.pad_token_id, data.task.regression)

    def label_logits(self, data: GlueLMData, logits: torch.Tensor) -> torch.Tensor:
        """The label words' logits `(N, C)` out of the answer position's `(N, V)`."""
        return logits[:, data.label_ids]

    def predictions(self, task, logits: torch.Tensor) -> list:
        raise NotImplementedError("GlueLMSuite scores through label_predictions (it needs the label ids)")

    def label_predictions(self, data: GlueLMData, logits: torch.Tensor) -> list:
        """Classes by the highest label-word logit; STS-B the expected digit under their softmax."""
        z = self.label_logits(data, logits).float()
        if data.task.regression:
            digits = torch.arange(z.shape[-1], dtype=torch.float32)
            return (F.softmax(z, -1) * digits).sum(-1).tolist()
        return z.argmax(-1).tolist()

    def val_metrics(self, data: GlueLMData, logits: torch.Tensor) -> dict[str, float]:
        return compute(data.task.metrics, self.label_predictions(data, logits), [e.label for e in data.val.examples])

    def evaluate(self, model, tokenizer, data: GlueLMData, cfg, device) -> tuple[dict, dict]:
        from kdbench.data.batching import eval_loader
        from kdbench.validation import predict

        scores, preds = {}, {}
        for split_name, split in data.evals.items():
            loader, order = eval_loader(self.encode(tokenizer, data, split.examples, cfg.train.max_length),
                                        self.collator(tokenizer, data), cfg.eval.batch_size)
            logits = predict(model, loader, device)
            unsorted = torch.empty_like(logits)
            unsorted[torch.tensor(order, dtype=torch.long)] = logits
            p = self.label_predictions(data, unsorted)
            scores.update(self.score(data.task, split_name, p, [e.label for e in split.examples]))
            preds[split_name] = p
        return scores, preds

    def compare(self, data: GlueLMData, student_logits, teacher_logits, labels) -> dict[str, float]:
        """agree@1 and ECE on the label words (the task's classes); KL to the teacher, MOR@5 and CR@5 over the
        whole vocabulary at the answer position (the distribution the methods distil)."""
        from kdbench.diagnostics import LM_K, classification, kl_per_position, topk_agreement

        out = {}
        if not data.task.regression:  # STS-B's labels are scores, not classes: no agreement or calibration
            out = classification(self.label_logits(data, student_logits), self.label_logits(data, teacher_logits),
                                 labels)
        out["kl_teacher"] = kl_per_position(student_logits, teacher_logits).mean().item()
        overlap, identical = topk_agreement(student_logits.float(), teacher_logits.float(), LM_K)
        out[f"mor@{LM_K}"], out[f"cr@{LM_K}"] = 100.0 * overlap.mean().item(), 100.0 * identical.mean().item()
        return out

