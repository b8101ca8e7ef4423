"""lm-eval: lm-evaluation-harness tasks scored on the trained student in memory (HFLM wrapper, no re-download).

    kdbench run suite=lmeval method=kd data_dir=../shared/data                 # offline: local tasks
    kdbench run suite=lmeval method=kd tasks=[hellaswag,arc_easy]            # online: any lm-eval task

Version history: 1: first release; 2: the last blocks of the training text are held out for the learning curve.
The student is distilled on the perplexity suite's corpus (WikiText-2 train
from the hub, offline the local wiki.valid.tokens), once per task, then scored.
Offline tasks are lm-eval YAMLs written at run time that point at files under
the data root:
- wikitext2: WikiText-2 test articles (split at " = Title = " lines), rolling
  log-likelihood; word_perplexity, byte_perplexity, bits_per_byte.
- sst2: GLUE SST-2 dev as a multiple-choice prompt
  "{sentence}\\nQuestion: Is this sentence positive or negative?\\nAnswer:" →
  " negative" / " positive"; acc (0–1, as lm-eval reports it).
data.max_eval_examples is lm-eval's `limit`. Any other task name goes to lm-eval
as is (it needs the hub unless its data is cached).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kdbench.suites.base import register_suite_kind
from kdbench.data.hub import hub_offline
from kdbench.data.glue_tasks import TASKS
from kdbench.data.local import Split, local_split
from kdbench.files import file_sha256
from kdbench.errors import KdbenchError
from kdbench.models.placement import to_device
from kdbench.suites.perplexity import PerplexitySuite, TextData

LOCAL_TASKS = {
    "wikitext2": ("word_perplexity", "byte_perplexity", "bits_per_byte"),
    "sst2": ("acc",),
}

SST2_YAML = """task: kdbench_sst2
dataset_path: csv
dataset_kwargs:
  data_files:
    validation: {path}
  delimiter: "\\t"
  quoting: 3
validation_split: validation
output_type: multiple_choice
doc_to_text: "{{{{sentence}}}}\\nQuestion: Is this sentence positive or negative?\\nAnswer:"
doc_to_choice: ["negative", "positive"]
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""

WIKITEXT_YAML = """task: kdbench_wikitext2
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{page}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""


def wikitext_articles(text: str) -> list[str]:
    """Split a WikiText token file into articles at top-level " = Title = " lines."""
    articles, current = [], []
    for line in text.splitlines(keepends=True):
        if line.startswith(" = ") and not line.startswith(" = = ") and current:
            articles.append("".join(current))
            current = []
        current.append(line)
    if current:
        articles.append("".join(current))
    return [a for a in articles if a.strip()]


def unigram_word_scores(train_text: str, docs: list[str]) -> dict[str, float]:
    """lm-eval's rolling-log-likelihood metrics of a unigram word model of `train_text` (add-one smoothing,
    one extra entry for unseen words): word_perplexity = exp(NLL / words), byte_perplexity = exp(NLL / bytes),
    bits_per_byte = NLL / (bytes · ln 2), with lm-eval's counts (whitespace-split words, UTF-8 bytes)."""
    counts = Counter(train_text.split())
    total, vocab = sum(counts.values()), len(counts) + 1
    nll = words = n_bytes = 0
    for doc in docs:
        tokens = doc.split()
        nll -= sum(math.log((counts.get(w, 0) + 1) / (total + vocab)) for w in tokens)
        words += len(re.split(r"\s+", doc))
        n_bytes += len(doc.encode("utf-8"))
    return {"word_perplexity": math.exp(nll / words), "byte_perplexity": math.exp(nll / n_bytes),
            "bits_per_byte": nll / (n_bytes * math.log(2))}


def _write_local_task(name: str, data_root: Path, folder: Path) -> str:
    """Write the YAML (and data) of a local task into `folder`; the files were checked by `load`."""
    if name == "sst2":
        (folder / "kdbench_sst2.yaml").write_text(SST2_YAML.format(path=data_root / "glue" / "SST-2" / "dev.tsv"))
        return "kdbench_sst2"
    path = data_root / "wikitext-2" / "wiki.test.tokens"
    docs = folder / "wikitext2_test.jsonl"
    docs.write_text("".join(json.dumps({"page": a}) + "\n" for a in wikitext_articles(path.read_text(encoding="utf-8"))))
    (folder / "kdbench_wikitext2.yaml").write_text(WIKITEXT_YAML.format(path=docs))
    return "kdbench_wikitext2"


def _clean(results: dict) -> dict[str, float]:
    """lm-eval's "acc,none" keys → "acc"; stderr kept where numeric."""
    out = {}
    for key, value in results.items():
        metric, _, _filter = key.partition(",")
        if _filter and isinstance(value, (int, float)):
            out[metric] = float(value)
    return out


@dataclass
class LmEvalData(TextData):
    """The distillation corpus of the perplexity suite, plus the lm-eval task to score."""

    lm_task: str = ""
    data_root: Path | None = None
    limit: int | None = None  # lm-eval's limit: data.max_eval_examples, None = all


@register_suite_kind("lmeval")
class LmEvalSuite(PerplexitySuite):
    def task_names(self) -> list[str]:
        return list(LOCAL_TASKS)

    def task_metrics(self, name: str) -> tuple:
        return LOCAL_TASKS.get(name, ("as lm-eval reports",))

    def check_tasks(self, tasks) -> None:
        unknown = [t for t in tasks if t not in LOCAL_TASKS]
        if unknown and hub_offline():
            raise KdbenchError(
                f"lm-eval tasks {unknown} need the hub, which is offline; offline tasks: {', '.join(LOCAL_TASKS)}"
            )

    def load(self, name, data_root, max_train, max_eval):
        corpus = super().load("wikitext2", data_root, max_train, 0)
        data = LmEvalData(name, corpus.train, {}, corpus.max_blocks, notes=corpus.notes, lm_task=name,
                          data_root=data_root, limit=max_eval or None)
        local = {"sst2": ("glue", "SST-2", "dev.tsv"), "wikitext2": ("wikitext-2", "wiki.test.tokens")}.get(name)
        source = data_root.joinpath(*local) if local and data_root is not None else None
        if local and (source is None or not source.is_file()):
            raise KdbenchError(f"the offline lm-eval task {name} reads {source or '<data_root>/' + '/'.join(local)};"
                               " pass data_dir= (or set KDBENCH_DATA_DIR)")
        sha = file_sha256(source) if source else f"lm-eval task {name}"
        data.evals = {"lm_eval": Split([], f"lm-eval:{name} ({source or 'hub'})", sha)}
        return data

    def trivial(self, tokenizer, data, cfg) -> dict[str, dict[str, float]]:
        """Offline tasks only (an online task's data is lm-eval's): SST-2's training majority class on the
        scored dev rows; for WikiText-2 the training text's unigram word model (add-one smoothing), scored
        on the test articles with lm-eval's word and byte counts."""
        if data.lm_task == "sst2":
            train = local_split(TASKS["sst2"], data.data_root, "train.tsv").examples
            dev = local_split(TASKS["sst2"], data.data_root, "dev.tsv").examples[: data.limit]
            majority = Counter(e.label for e in train).most_common(1)[0][0]
            return {"majority class": {"acc": sum(e.label == majority for e in dev) / len(dev)}}
        if data.lm_task == "wikitext2":
            path = data.data_root / "wikitext-2" / "wiki.test.tokens"
            docs = wikitext_articles(path.read_text(encoding="utf-8"))[: data.limit]
            return {"unigram (training words)": unigram_word_scores(data.train.examples[0], docs)}
        return {}

    def evaluate(self, model, tokenizer, data, cfg, device) -> tuple[dict, dict]:
        try:
            from lm_eval import simple_evaluate
            from lm_eval.models.huggingface import HFLM
            from lm_eval.tasks import TaskManager
        except ImportError:
            raise KdbenchError("the lmeval suite needs lm-evaluation-harness: pip install lm-eval") from None
        model = to_device(model, device).eval()
        with tempfile.TemporaryDirectory(prefix="kdbench-lmeval-") as folder:
            task = data.lm_task
            if task in LOCAL_TASKS:
                task = _write_local_task(task, data.data_root, Path(folder))
            manager = TaskManager(include_path=folder)
            lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=cfg.eval.batch_size, max_length=cfg.eval.window,
                      device=str(device))
            results = simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=data.limit,
                                      log_samples=False, random_seed=0, numpy_random_seed=0, torch_random_seed=0)
        return _clean(results["results"][task]), {}

