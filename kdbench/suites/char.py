"""Char: character-level language modelling on Tiny Shakespeare, the fast LM track that converges on 2 cores.

    kdbench run suite=char method=rlkd data_dir=../shared/data

Version history (bump when a number can move): 1: first release.
Data: <data_root>/tinyshakespeare/input.txt (1,115,394 characters). As in nanoGPT's shakespeare_char, the
first 90% is the training text and the last 10% the test text; the learning curve's validation slice is
the last `data.val_examples` blocks of the training text (kdbench.validation). Vocabulary: the 65
characters plus a pad token (kdbench.models.char); ~65 outputs make top-k rankings meaningful (RLKD,
CR@k, MOR@k).
Scores on the test text:
- loss: mean cross-entropy per character (nats), by sliding window (eval.window, eval.stride: every
  character after the first scored once, with at least window − stride characters of context);
  perplexity = exp(loss);
- cer: greedy continuations. The test text gives `CONTINUATIONS` evenly spaced (prompt, continuation)
  pairs of train.max_length − eval.max_new_tokens and eval.max_new_tokens characters (a prompt and its
  continuation fill one training-length window; data.max_eval_examples keeps the first N);
  the corpus CER (jiwer) of the generated against the real continuations, both stripped of surrounding
  whitespace. Greedy decoding of a small model repeats itself; CER compares methods, not the model to
  a human.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from kdbench import metrics
from kdbench.suites.base import register_suite_kind
from kdbench.data.local import Split
from kdbench.errors import KdbenchError
from kdbench.files import file_sha256
from kdbench.generation import generate
from kdbench.models.char import check_text
from kdbench.models.placement import to_device
from kdbench.suites.perplexity import PerplexitySuite, TextData

TASKS = {"shakespeare": ("tinyshakespeare", "input.txt")}
TRAIN_SHARE = 0.9  # nanoGPT's split
CONTINUATIONS = 100  # (prompt, continuation) pairs taken from the test text


@dataclass
class CharData(TextData):
    max_continuations: int = 0  # data.max_eval_examples: score the first N continuations (0 = all)
    continuation_pairs: list = field(default_factory=list)  # [(prompt, reference)], set when evaluated


def _read(root: Path | None, name: str) -> tuple[str, Path]:
    folder, filename = TASKS[name]
    if root is None:
        raise KdbenchError("the char suite reads <data_root>/tinyshakespeare/input.txt; pass data_dir= (or set"
                           " KDBENCH_DATA_DIR)")
    path = root / folder / filename
    if not path.is_file():
        raise KdbenchError(f"missing {path}; pass data_dir= (or set KDBENCH_DATA_DIR) to a data root with it")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise KdbenchError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if len(text) < 1000:
        raise KdbenchError(f"{path}: {len(text)} characters is too little text to train and test on")
    check_text(text, str(path))
    return text, path


def continuations(test: str, n: int, prompt_chars: int, new_chars: int) -> list[tuple[str, str]]:
    """n evenly spaced (prompt, continuation) pairs from the test text, each starting at a line start when one is
    near, so prompts do not begin mid-word."""
    span = prompt_chars + new_chars
    last = len(test) - span
    if last <= 0:
        raise KdbenchError(f"the test text ({len(test)} characters) is shorter than one prompt + continuation ({span})")
    pairs = []
    for i in range(n):
        start = int(i * last / max(n - 1, 1))
        line = test.rfind("\n", max(0, start - 40), start)
        start = line + 1 if line >= 0 and line + 1 <= last else start
        pairs.append((test[start:start + prompt_chars], test[start + prompt_chars:start + span]))
    return pairs


@register_suite_kind("char")
class CharSuite(PerplexitySuite):
    tasks = tuple(TASKS)
    label = "char"

    def configure(self, cfg) -> None:
        """The suite's options, checked before any model loads: a continuation's prompt fills the rest of a
        training-length window, the scoring window is no longer than the training one, and there are at most
        CONTINUATIONS continuations."""
        super().configure(cfg)
        prompt = cfg.train.max_length - cfg.eval.max_new_tokens
        if prompt < 8:
            raise KdbenchError(f"char continuations use train.max_length - eval.max_new_tokens = {prompt} characters"
                               " of prompt; need at least 8: lower eval.max_new_tokens or raise train.max_length")
        if cfg.eval.window > cfg.train.max_length:
            raise KdbenchError(f"eval.window={cfg.eval.window} is longer than the {cfg.train.max_length}-character"
                               " blocks the models train on; set eval.window<=train.max_length")
        if cfg.data.max_eval_examples > CONTINUATIONS:
            raise KdbenchError(f"data.max_eval_examples={cfg.data.max_eval_examples}: the char suite scores at most"
                               f" {CONTINUATIONS} continuations")

    def task_metrics(self, name: str) -> tuple:
        return ("loss", "perplexity", "cer")

    def load(self, name: str, data_root: Path | None, max_train: int, max_eval: int) -> CharData:
        text, path = _read(data_root, name)
        cut = int(len(text) * TRAIN_SHARE)
        sha = file_sha256(path)
        train = Split([text[:cut]], f"{path} [first {TRAIN_SHARE:.0%}]", f"{sha}/train{TRAIN_SHARE}")
        test = Split([text[cut:]], f"{path} [last {1 - TRAIN_SHARE:.0%}]", f"{sha}/test{TRAIN_SHARE}")
        return CharData(name, train, {"test": test}, max_blocks=max_train, max_continuations=max_eval)

    def _pairs(self, data: CharData, cfg) -> list[tuple[str, str]]:
        pairs = continuations(data.evals["test"].examples[0], CONTINUATIONS, cfg.train.max_length - cfg.eval.max_new_tokens,
                              cfg.eval.max_new_tokens)
        return pairs[: data.max_continuations] if data.max_continuations else pairs

    def evaluate(self, model, tokenizer, data: CharData, cfg, device) -> tuple[dict, dict]:
        model = to_device(model, device)
        ppl = metrics.perplexity(model, tokenizer, data.evals["test"].examples, stride=cfg.eval.stride,
                                 max_length=cfg.eval.window, max_tokens=cfg.eval.max_tokens, progress=True,
                                 batch_size=cfg.eval.batch_size)
        pairs = data.continuation_pairs = self._pairs(data, cfg)
        generated = generate(model, tokenizer, [p for p, _ in pairs], cfg.eval.max_new_tokens, cfg.eval.batch_size)
        references = [c.strip() or c for _, c in pairs]
        return ({"loss": math.log(ppl), "perplexity": ppl, "cer": metrics.cer(generated, references)},
                {"greedy": generated})

    def examples(self, data: CharData, predictions: dict) -> dict:
        """Per-example continuations for paired statistics on the CER (loss and perplexity are corpus-level)."""
        references = [c.strip() or c for _, c in data.continuation_pairs]
        return {"test": {"metrics": ["cer"], "references": references, "predictions": predictions}}

    def trivial(self, tokenizer, data: CharData, cfg) -> dict[str, dict[str, float]]:
        """The training text's unigram character model; the empty continuation; the prompt's last characters
        copied as the continuation."""
        unigram = super().trivial(tokenizer, data, cfg)["unigram (training tokens)"]
        pairs = self._pairs(data, cfg)
        references = [c.strip() or c for _, c in pairs]
        copies = [p[-len(c):].strip() for p, c in pairs]
        return {"unigram (training characters)": {"loss": math.log(unigram["perplexity"]), **unigram},
                "empty output": {"cer": metrics.cer([""] * len(pairs), references)},
                "copy the prompt": {"cer": metrics.cer(copies, references)}}

