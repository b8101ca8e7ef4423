"""The MiniLLM evaluation protocol (METHODS.md §8; LMOps `minillm/scripts/gpt2/eval/run_eval.sh`), the one that
MiniLLM, DistiLLM, DSKD and ABKD report: distil on Dolly, score on four instruction sets.

    kdbench run suite=minillm method=kd            # the CPU subset (its TOML says which)
    kdbench run suite=minillm_full method=kd       # the whole protocol

Tasks `dolly` (500), `self_inst` (242), `vicuna` (80; references are GPT-3.5 answers) and `sinst` (S-NI `11_`,
1,694, 1-N references), from `<data_root>/minillm-eval/` (kdbench.data.minillm_eval). Every task trains on the
same data, MiniLLM's 11,435 Dolly training examples (decoded from their GPT-2 ids and read by each model's own
tokenizer), so one student is trained and scored on all four. The learning curve's validation rows are the
first `data.val_examples` of Dolly dev (`dolly/dev.jsonl`, MiniLLM's 1,000-row validation split), not a slice
of the training rows. Prompts are the stored Alpaca-filled text, cut to their first 256 tokens (of the scoring
model's tokenizer; MiniLLM cuts GPT-2 tokens) before generation. Decoding and score come from the suite file:
sampling (top-k 0, top-p 1, T 1) once per seed, ROUGE-L F with stemming, best over the references, × 100, mean
and standard deviation over the seeds. Unnatural Instructions, the protocol's fifth set, is not obtainable
offline (its 10K file is not in the data root) and is left out.
"""

from __future__ import annotations

import copy
from pathlib import Path

from kdbench.data.local import Split
from kdbench.data.minillm_eval import dolly_train, read_prompt_set
from kdbench.errors import KdbenchError
from kdbench.files import file_sha256
from kdbench.suites.base import register_suite_kind
from kdbench.suites.generation import GenData, GenerationSuite, _first

PROMPT_TOKENS = 256  # MiniLLM's --max-prompt-length: the first 256 tokens of a prompt are kept
EVAL_FILES = {"dolly": "dolly/valid.jsonl", "self_inst": "self-inst/valid.jsonl", "vicuna": "vicuna/valid.jsonl",
              "sinst": "sinst/11_/valid.jsonl"}
DEV_FILE = "dolly/dev.jsonl"
TRAIN_SOURCE = "dolly/processed-gpt2/train_0.{bin,idx} (GPT-2 ids, decoded)"


@register_suite_kind("minillm")
class MiniLLMSuite(GenerationSuite):
    """MiniLLM's four offline evaluation sets, distilled on its Dolly training split (see the module docstring)."""

    tasks = tuple(EVAL_FILES)
    label = "MiniLLM protocol"

    def __init__(self, info=None):
        super().__init__(info)
        self._train_rows: dict[Path, Split] = {}  # decoded once per data root: every task trains on it

    def load(self, name: str, data_root: Path | None, max_train: int, max_eval: int) -> GenData:
        if data_root is None:
            raise KdbenchError("the MiniLLM protocol reads <data_root>/minillm-eval/; pass data_dir= or set"
                               " KDBENCH_DATA_DIR")
        base = data_root / "minillm-eval"
        if data_root not in self._train_rows:
            bin_file = base / "dolly" / "processed-gpt2" / "train_0.bin"
            self._train_rows[data_root] = Split(dolly_train(data_root), str(base / TRAIN_SOURCE),
                                                file_sha256(bin_file) if bin_file.is_file() else "")
        test_path = base / EVAL_FILES[name]
        test = Split(read_prompt_set(test_path), str(test_path), file_sha256(test_path))
        notes = ["Unnatural Instructions (the protocol's fifth set) is not obtainable offline and is left out"]
        return GenData(name, _first(self._train_rows[data_root], max_train), {"test": _first(test, max_eval)},
                       notes=notes + ([self.scorer.note()] if self.scorer and self.scorer.note else []),
                       train_name="dolly")

    def hold_out(self, data: GenData, n: int) -> None:
        """The validation rows are Dolly dev's first n (its first reference as the response), not training rows."""
        if not n:
            data.val = None
            return
        base = Path(data.evals["test"].source)
        for _ in Path(EVAL_FILES[data.name]).parts:  # back up from the test file to minillm-eval/
            base = base.parent
        dev = base / DEV_FILE
        rows = read_prompt_set(dev)[:n]
        data.val = Split([(prompt, refs[0]) for prompt, refs in rows], f"{dev} (first {len(rows)})", file_sha256(dev))

    def val_description(self, data) -> str:
        return f"{len(data.val.examples)} rows of Dolly dev (MiniLLM's validation split)" if data.val else "none"

    def evaluate(self, model, tokenizer, data: GenData, cfg, device) -> tuple[dict, dict]:
        """The parent's scoring on prompts cut to their first 256 tokens."""
        view = copy.copy(data)
        test = data.evals["test"]
        view.evals = {"test": Split([(cut_prompt(tokenizer, p), refs) for p, refs in test.examples], test.source,
                                    test.sha256)}
        return super().evaluate(model, tokenizer, view, cfg, device)


def cut_prompt(tokenizer, prompt: str, limit: int = PROMPT_TOKENS) -> str:
    """`prompt` up to its first `limit` tokens (MiniLLM's `PromptDataset` keeps `data[:max_prompt_length]`)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return prompt if len(ids) <= limit else tokenizer.decode(ids[:limit])
