"""The generation suite kind: prompt → response data, distillation on the response tokens, scoring by generation.

    kdbench run suite=bleu method=rlkd data_dir=../shared/data          # Multi30k en→de, corpus BLEU (sacrebleu)
    kdbench run suite=cer method=kd tasks=[scitldr] data_dir=../shared/data   # CER (jiwer, corpus), lower is better
    kdbench run suite=rouge method=kd data_dir=../shared/data          # SciTLDR + Self-Instruct, ROUGE-1/2/L F

The tasks (data, prompt format, references) live here; each preset (suites/bleu.toml, cer, rouge, rlkd_*,
minillm_dolly) picks tasks and names its metric (`metric = "bleu"`: GENERATION_METRICS below). Preset
versions: bleu/cer 1 first release, 2 teacher fine-tuned on Multi30k train (200 steps of 8), 3 validation
slice held out, 4 the calibrated student budget (bleu also reports CER: metric "bleu_cer"); rouge 1 first
release, 2 SciTLDR + Self-Instruct at 50 steps, 3 validation slice held out, 4 the calibrated student budget
(400 steps; SciTLDR only), 5 the teacher fine-tuned on SciTLDR train (top 4 layers, 200 steps of 8).
Prompt formats (a change bumps the presets' versions):
- multi30k (en→de, Multi30k train / test_2016_flickr):
  "Translate English to German.\\nEnglish: {en}\\nGerman:" → " {de}"
- scitldr (SciTLDR-A train / test, abstract → TL;DR; test has several references):
  "Summarize the abstract in one sentence.\\nAbstract: {abstract}\\nTL;DR:" → " {tldr}"
Training puts the loss on the response tokens and EOS only. Both tasks answer in
one line, so a prediction is cut at its first newline before scoring (an
instruct teacher otherwise goes on to explain its answer). Evaluation decodes
eval.max_new_tokens tokens greedily with the KV cache (eval.decoding=greedy), or
samples at T = 1, top-p = 1 once per seed in eval.seeds and reports the mean
and the standard deviation over seeds (eval.decoding=sample, MiniLLM/DistiLLM).
"""

from __future__ import annotations

import copy

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kdbench import metrics
from kdbench.data.batching import LMCollator, prompt_response, train_loader
from kdbench.data.byte_alignment import aligned_groups
from kdbench.data.local import Split
from kdbench.errors import KdbenchError
from kdbench.files import file_sha256
from kdbench.generation import generate
from kdbench.metric_specs import compute, spread
from kdbench.models.load import load_causal_lm
from kdbench.models.placement import to_device
from kdbench.suites.base import Suite, register_suite_kind
from kdbench.validation import batches, carve


@dataclass
class GenData:
    name: str
    train: Split  # examples: [(prompt, response)]
    evals: dict  # "test" -> Split with examples [(prompt, [references])]
    max_train: int = 0
    val: Split | None = None  # rows held out of train for learning curves (kdbench.validation)
    num_labels: int = 0
    regression: bool = False
    notes: list = field(default_factory=list)
    # The task whose training data this is, where the suite's tasks all train on one set (the MiniLLM sets on
    # Dolly): their teacher is fine-tuned once, under that name. "": this task's own.
    train_name: str = ""


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise KdbenchError(f"missing {path}; pass data_dir= (or set KDBENCH_DATA_DIR) to a data root with it")
    try:
        return path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    except UnicodeDecodeError as e:
        raise KdbenchError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _combined_hash(*paths: Path) -> str:
    return "+".join(file_sha256(p)[:16] for p in paths)


def multi30k_prompt(en: str) -> str:
    return f"Translate English to German.\nEnglish: {en}\nGerman:"


def _multi30k(root: Path) -> tuple[Split, Split]:
    base = root / "multi30k"
    split = {}
    for name in ("train", "test_2016_flickr"):
        en, de = _lines(base / f"{name}.en"), _lines(base / f"{name}.de")
        if len(en) != len(de):
            raise KdbenchError(f"{base}/{name}.en has {len(en)} lines but {name}.de has {len(de)}; they must pair up")
        for i, (a, b) in enumerate(zip(en, de), start=1):
            if not a.strip() or not b.strip():
                raise KdbenchError(f"{base}/{name}: line {i} is empty")
        split[name] = (en, de, _combined_hash(base / f"{name}.en", base / f"{name}.de"), str(base / name))
    en, de, sha, src = split["train"]
    train = Split([(multi30k_prompt(a), f" {b}") for a, b in zip(en, de)], src, sha)
    en, de, sha, src = split["test_2016_flickr"]
    test = Split([(multi30k_prompt(a), [b]) for a, b in zip(en, de)], src, sha)
    return train, test


def scitldr_prompt(abstract: list[str]) -> str:
    return f"Summarize the abstract in one sentence.\nAbstract: {' '.join(abstract)}\nTL;DR:"


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for i, line in enumerate(_lines(path), start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise KdbenchError(f"{path}:{i}: broken JSON line ({e.msg})") from None
        if not row.get("source") or not row.get("target"):
            raise KdbenchError(f"{path}:{i}: a SciTLDR row needs a non-empty source and target")
        rows.append(row)
    return rows


def _scitldr(root: Path) -> tuple[Split, Split]:
    base = root / "scitldr-a"
    train_rows, test_rows = _jsonl(base / "train.jsonl"), _jsonl(base / "test.jsonl")
    train = Split([(scitldr_prompt(r["source"]), f" {r['target'][0]}") for r in train_rows], str(base / "train.jsonl"),
                  file_sha256(base / "train.jsonl"))
    test = Split([(scitldr_prompt(r["source"]), list(r["target"])) for r in test_rows], str(base / "test.jsonl"),
                 file_sha256(base / "test.jsonl"))
    return train, test


def _chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _selfinst(root: Path) -> tuple[Split, Split]:
    path = root / "self-instruct-user-oriented" / "user_oriented_instructions.jsonl"
    rows = []
    for i, line in enumerate(_lines(path), start=1):
        try:
            row = json.loads(line)
            instance = row["instances"][0]
            rows.append((row["instruction"], instance["input"], instance["output"]))
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise KdbenchError(f"{path}:{i}: expected a JSON object with instruction and instances[0].input/output") from None
    test = Split([(_chat(f"{ins}\n\n{inp}" if inp.strip() else ins), [out]) for ins, inp, out in rows], str(path),
                 file_sha256(path))
    base = root / "scitldr-a"
    train = Split([(_chat(f"Summarize the abstract in one sentence.\n\n{' '.join(r['source'])}"), r["target"][0])
                   for r in _jsonl(base / "train.jsonl")], f"{base / 'train.jsonl'} (chat format)",
                  file_sha256(base / "train.jsonl") + "+chat")
    return train, test


def dolly_prompt(instruction: str, context: str) -> str:
    """The MiniLLM/DistiLLM instruction format."""
    head = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    if context.strip():
        return f"{head}### Instruction:\n{instruction}\n\n### Input:\n{context}\n\n### Response:\n"
    return f"{head}### Instruction:\n{instruction}\n\n### Response:\n"


def _hub(dataset: str, config: str | None = None, split: str = "train"):
    from kdbench.data.hub import hub_offline

    if hub_offline():
        raise KdbenchError(f"this task reads {dataset} from the hub, which is offline (HF_HUB_OFFLINE is set)")
    import datasets

    try:
        return datasets.load_dataset(dataset, config, split=split)
    except Exception as e:  # unreachable hub, missing dataset: one readable line
        raise KdbenchError(f"cannot load {dataset} from the hub: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def _random_split(rows: list, test_size: int, seed: int = 72) -> tuple[list, list]:
    """A seeded random train/test split (RLKD: seed 72, Dolly 800 and XSum 1,000 test rows)."""
    import random

    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in order[test_size:]], [rows[i] for i in order[:test_size]]


def _dolly(test_size: int):
    def load(root):
        ds = _hub("databricks/databricks-dolly-15k")
        rows = [(dolly_prompt(r["instruction"], r["context"]), r["response"]) for r in ds if r["response"].strip()]
        train, test = _random_split(rows, test_size)
        src = f"hub:databricks/databricks-dolly-15k (seed-72 split, {test_size} test)"
        return (Split([(p, f"{r}") for p, r in train], src, ds._fingerprint),
                Split([(p, [r]) for p, r in test], src, ds._fingerprint))
    return load


def _xsum(root):
    ds = _hub("EdinburghNLP/xsum", split="train")
    rows = [(f"Summarize the article in one sentence.\nArticle: {r['document']}\nSummary:", r["summary"]) for r in ds]
    train, test = _random_split(rows, 1000)
    src = "hub:EdinburghNLP/xsum (seed-72 split: 20,000 train, 1,000 test)"
    return (Split([(p, f" {r}") for p, r in train[:20000]], src, ds._fingerprint),
            Split([(p, [r]) for p, r in test], src, ds._fingerprint))


def rlkd_prompt(query: str) -> str:
    """The RLKD authors' GSM8K prompt (Pty72/RLKD `sft/sft_dataset.py`, Alpaca's PROMPT_DICT): the query's first
    line is the instruction and the rest, if any, the input."""
    instruction, _, rest = query.partition("\n")
    if rest:
        return ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n\n"
                f"### Instruction:\n{instruction}\n\n### Input:\n{rest}\n\n### Response:")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes the request."
            f"\n\n### Instruction:\n{instruction}\n\n### Response:")


def _rlkd_gsm8k_rows(path: Path) -> list[tuple[str, str]]:
    rows = []
    for i, line in enumerate(_lines(path), start=1):
        try:
            row = json.loads(line)
            rows.append((row["query"], row["response"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise KdbenchError(f"{path}:{i}: expected a JSON object with query and response") from None
        if not rows[-1][0].strip() or not rows[-1][1].strip():
            raise KdbenchError(f"{path}:{i}: empty query or response")
    return rows


def _gsm8k(root):
    """GSM8K: the RLKD authors' splits from the data root (`rlkd/gsm8k/{train,test}_use.jsonl`, their prompt),
    else the hub's openai/gsm8k (online users without the data root)."""
    base = root / "rlkd" / "gsm8k" if root is not None else None
    if base is not None and (base / "train_use.jsonl").is_file():
        splits = []
        for name, as_reference in (("train_use.jsonl", False), ("test_use.jsonl", True)):
            rows = _rlkd_gsm8k_rows(base / name)
            splits.append(Split([(rlkd_prompt(q), [r] if as_reference else r) for q, r in rows], str(base / name),
                                file_sha256(base / name)))
        return splits[0], splits[1]
    train, test = _hub("openai/gsm8k", "main", "train"), _hub("openai/gsm8k", "main", "test")
    fmt = lambda r: f"Question: {r['question']}\nAnswer:"  # noqa: E731
    return (Split([(fmt(r), f" {r['answer']}") for r in train], "hub:openai/gsm8k/main/train", train._fingerprint),
            Split([(fmt(r), [r["answer"]]) for r in test], "hub:openai/gsm8k/main/test", test._fingerprint))


TASK_LOADERS = {"multi30k": _multi30k, "scitldr": _scitldr, "selfinst": _selfinst}
HUB_TASK_LOADERS = {"dolly": _dolly(800), "dolly_minillm": _dolly(500), "xsum": _xsum, "gsm8k": _gsm8k}
ONE_LINE_ANSWERS = {"multi30k", "scitldr", "xsum"}
NOTES = {"selfinst": ["distillation corpus: SciTLDR-A train in chat format (Dolly is not available offline);"
                      " Self-Instruct is evaluation only"]}


def render(tokenizer, prompt) -> str:
    """A prompt as text: plain strings as they are, chat messages through the tokenizer's chat template."""
    if isinstance(prompt, str):
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise KdbenchError("this task is a chat prompt and the tokenizer has no chat template; use an instruct tokenizer")
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def first_lines(predictions: list[str]) -> list[str]:
    """Each prediction up to its first newline: the tasks here answer in one line."""
    return [p.strip().split("\n", 1)[0].strip() for p in predictions]


def prompt_input(task: str, prompt) -> str:
    """The input a prompt wraps (the sentence to translate, the abstract, the instruction): what the
    copy-the-prompt baseline answers with. Chat prompts give their user message."""
    if not isinstance(prompt, str):
        return prompt[-1]["content"]
    for head, tail in (("\nEnglish: ", "\nGerman:"), ("\nAbstract: ", "\nTL;DR:"), ("\nArticle: ", "\nSummary:"),
                       ("Question: ", "\nAnswer:"), ("### Instruction:\n", "\n\n### Response:")):
        if head in prompt and tail in prompt:
            return prompt.split(head, 1)[1].rsplit(tail, 1)[0]
    return prompt


def _first(split: Split, n: int) -> Split:
    return split if not n else Split(split.examples[:n], split.source, split.sha256)


@dataclass(frozen=True)
class GenerationMetric:
    """What a generation preset's `metric` reports (each name's function: kdbench.metric_specs) and how it
    reads the references."""

    names: tuple
    first_reference: bool  # scored against each example's first reference (else against all of them)
    note: Callable[[], str] | None = None  # what the record's data notes say of it (sacrebleu's signature)


def _bleu_note() -> str:
    return f"sacrebleu signature: {metrics.bleu_signature()}"


GENERATION_METRICS = {
    "bleu": GenerationMetric(("bleu",), True, _bleu_note),
    "cer": GenerationMetric(("cer",), True),
    # both of one student's outputs: the bleu suite's students are the cer suite's (the same training), so
    # one sweep scores both instead of training every student twice; BLEU first, the table's headline
    "bleu_cer": GenerationMetric(("bleu", "cer"), True, _bleu_note),
    # rouge-score with Porter stemming; each example scores the best F over its references
    "rouge": GenerationMetric(("rouge1", "rouge2", "rougeL"), False),
    "rougeL": GenerationMetric(("rougeL",), False),  # the MiniLLM protocol's one score
    # the prediction's number after "####" (else its last number) must equal the reference's
    "gsm8k_accuracy": GenerationMetric(("gsm8k_accuracy",), True),
}


@register_suite_kind("generation")
class GenerationSuite(Suite):
    """Every generation task, scored by the metric its suite file names (`metric = "bleu"`; the bleu, cer,
    rouge, rlkd_* and minillm_dolly presets)."""
    samples_responses = True  # an on-policy method samples continuations (kdbench.rollouts)
    paired_examples = True  # a cross-tokenizer method reads each example through both tokenizers

    tasks = (*TASK_LOADERS, *HUB_TASK_LOADERS)
    label = "generation"

    def __init__(self, info=None):
        super().__init__(info)
        self._encoded: dict = {}
        if info is None:  # built by hand (`kdbench ls tasks`, tests): lists every metric it can report
            self.scorer = None
            self.metric_names = tuple(name for m in GENERATION_METRICS.values() for name in m.names)
            return
        if info.metric not in GENERATION_METRICS:
            raise KdbenchError(f"suite {info.name!r} (kind generation) names metric {info.metric!r}; set metric ="
                               f" one of {', '.join(GENERATION_METRICS)} in its TOML")
        self.scorer = GENERATION_METRICS[info.metric]
        self.metric_names = self.scorer.names

    def metric(self, predictions: list[str], references: list[list[str]]) -> dict[str, float]:
        return compute(self.metric_names, predictions, self.metric_references(references))

    def metric_references(self, references: list[list[str]]) -> list:
        """The references as the metric scores against them (all of them, or the first)."""
        return [refs[0] for refs in references] if self.scorer.first_reference else references

    def diagnostics(self, student, teacher, tokenizer, data: GenData, cfg, device) -> dict[str, float]:
        """Top-k agreement and KL to the teacher, teacher-forced on the first eval references."""
        from kdbench.diagnostics import LM_EXAMPLES, language_model

        # the references take the training responses' form (some tasks start a response with a space)
        space = " " if data.train.examples and data.train.examples[0][1].startswith(" ") else ""
        view = copy.copy(data)
        view.train = Split([(p, space + refs[0]) for p, refs in data.evals["test"].examples[:LM_EXAMPLES]],
                           data.evals["test"].source, data.evals["test"].sha256)
        max_length = max(cfg.train.max_length, 32)
        loader = self.train_loader(tokenizer, view, max_length, cfg.eval.batch_size, 0, cfg.data.padding_side)
        return language_model(student, teacher, loader, device)

    def examples(self, data: GenData, predictions: dict) -> dict:
        """Per-example outputs for paired statistics: {split: {metrics, references, predictions}}."""
        references = self.metric_references([refs for _, refs in data.evals["test"].examples])
        return {"test": {"metrics": list(self.metric_names), "references": references, "predictions": predictions}}

    def task_metrics(self, name: str) -> tuple:
        return self.metric_names

    def scores_complete(self, name: str, scores: dict) -> bool:
        return self.scorer is None or set(self.metric_names) <= set(scores)

    def load(self, name: str, data_root: Path | None, max_train: int, max_eval: int) -> GenData:
        if name in TASK_LOADERS and data_root is None:
            raise KdbenchError("this task reads a local data root; pass data_dir= or set KDBENCH_DATA_DIR")
        train, test = {**TASK_LOADERS, **HUB_TASK_LOADERS}[name](data_root)
        notes = list(NOTES.get(name, [])) + ([self.scorer.note()] if self.scorer and self.scorer.note else [])
        return GenData(name, _first(train, max_train), {"test": _first(test, max_eval)}, notes=notes)

    def build_model(self, name: str, data: GenData, seed: int, cache_dir=None, attention_maps: bool = False):
        return load_causal_lm(name, seed=seed, eager=attention_maps, cache_dir=cache_dir)

    def hold_out(self, data: GenData, n: int) -> None:
        data.train, data.val = carve(data.train, n)

    def val_batches(self, tokenizer, data: GenData, cfg) -> tuple[list[dict], list[int]]:
        """The held-out (prompt, response) rows, teacher-forced: the curve is the response tokens' CE."""
        features = self._features(tokenizer, data.val.examples, cfg.train.max_length)[0]
        if not features:
            raise KdbenchError(f"every validation prompt fills train.max_length={cfg.train.max_length}; raise it")
        return batches(features, LMCollator(tokenizer.pad_token_id), cfg.eval.batch_size)

    def trivial(self, tokenizer, data: GenData, cfg) -> dict[str, dict[str, float]]:
        """Outputs that need no model: the empty string, and the prompt's input copied as the answer."""
        test = data.evals["test"].examples
        references = [refs for _, refs in test]
        copies = [prompt_input(data.name, prompt) for prompt, _ in test]
        if data.name in ONE_LINE_ANSWERS:
            copies = first_lines(copies)
        return {"empty output": self.metric([""] * len(test), references),
                "copy the prompt": self.metric(copies, references)}

    @staticmethod
    def _features(tokenizer, examples: list, max_length: int) -> tuple[list[dict], list[int]]:
        """(prompt → response features, indices of the examples skipped because the prompt fills max_length)."""
        features, skipped = [], []
        for i, (prompt, response) in enumerate(examples):
            row = prompt_response(tokenizer, render(tokenizer, prompt), response, max_length)
            if all(label == -100 for label in row["labels"]):
                skipped.append(i)  # the prompt fills the whole window: nothing to learn from this example
                continue
            features.append(row)
        return features, skipped

    def _training_features(self, tokenizer, data: GenData, max_length: int) -> tuple[list[dict], list[int]]:
        """`_features` of the training rows, computed once per (tokenizer, rows, length): `notes` and
        `train_loader` both need them. The memo keeps the rows it was keyed by alive, so the key stays theirs."""
        key = (tokenizer.name_or_path, len(tokenizer), id(data.train.examples), max_length)
        if key not in self._encoded:
            self._encoded[key] = (data.train.examples, *self._features(tokenizer, data.train.examples, max_length))
        return self._encoded[key][1:]

    def notes(self, tokenizer, data: GenData, cfg) -> list[str]:
        """`load`'s notes, and how many training rows a length leaves without a response to learn (the
        student's train.max_length, and the teacher's when it is fine-tuned at another length)."""
        out = list(data.notes)
        lengths = [("train", cfg.train.max_length)]
        if cfg.teacher_train.max_steps and cfg.teacher_train.max_length != cfg.train.max_length:
            lengths.append(("teacher_train", cfg.teacher_train.max_length))
        for section, length in lengths:
            skipped = self._training_features(tokenizer, data, length)[1]
            if skipped:
                out.append(f"{len(skipped)} of {len(data.train.examples)} training examples skipped: their prompt"
                           f" fills {section}.max_length={length} (first: example {skipped[0]})")
        return out

    def paired_features(self, teacher_tokenizer, student_tokenizer, data: GenData, max_length: int,
                        byte_groups: bool = False) -> list[dict | None]:
        n = len(data.train.examples)
        student_features, student_skipped = self._training_features(student_tokenizer, data, max_length)
        teacher_features, teacher_skipped = self._training_features(teacher_tokenizer, data, max_length)
        skipped = set(teacher_skipped)
        teacher_of = dict(zip((i for i in range(n) if i not in skipped), teacher_features))
        student_skipped = set(student_skipped)
        paired = [(i, teacher_of.get(i)) for i in range(n) if i not in student_skipped]
        if not byte_groups:
            return [teacher for _, teacher in paired]
        return [teacher and {**teacher, **aligned_groups(student_tokenizer, teacher_tokenizer,
                                                         data.train.examples[i][1], student, teacher)}
                for (i, teacher), student in zip(paired, student_features)]

    def train_loader(self, tokenizer, data: GenData, max_length: int, batch_size: int, seed: int, padding_side="right"):
        features = self._training_features(tokenizer, data, max_length)[0]
        if not features:
            raise KdbenchError(f"{data.train.source}: every prompt fills all {max_length} tokens of train.max_length,"
                               " leaving no response to learn; raise train.max_length")
        return train_loader(features, LMCollator(tokenizer.pad_token_id, padding_side), batch_size, seed)

    def evaluate(self, model, tokenizer, data: GenData, cfg, device) -> tuple[dict, dict]:
        model = to_device(model, device)
        prompts = [render(tokenizer, p) for p, _ in data.evals["test"].examples]
        references = [refs for _, refs in data.evals["test"].examples]
        context = getattr(model.config, "max_position_embeddings", None)
        if context:
            for i, p in enumerate(prompts):
                n = len(tokenizer(p, add_special_tokens=False)["input_ids"])
                if n + cfg.eval.max_new_tokens > context:
                    raise KdbenchError(
                        f"{data.evals['test'].source}: prompt {i} has {n} tokens; with eval.max_new_tokens="
                        f"{cfg.eval.max_new_tokens} it exceeds the model's context of {context} tokens"
                    )
        cut = first_lines if data.name in ONE_LINE_ANSWERS else (lambda preds: preds)
        if cfg.eval.decoding == "greedy":
            predictions = cut(generate(model, tokenizer, prompts, cfg.eval.max_new_tokens, cfg.eval.batch_size))
            return self.metric(predictions, references), {"greedy": predictions}
        runs = {}
        for seed in cfg.eval.seeds:
            preds = cut(generate(model, tokenizer, prompts, cfg.eval.max_new_tokens, cfg.eval.batch_size,
                                 sample=True, seed=int(seed)))
            runs[seed] = (self.metric(preds, references), preds)
        scores = {}
        for key in next(iter(runs.values()))[0]:
            values = [r[0][key] for r in runs.values()]
            scores[key] = statistics.mean(values)
            scores[spread(key)] = statistics.stdev(values) if len(values) > 1 else 0.0
        return scores, {f"seed_{s}": r[1] for s, r in runs.items()}
