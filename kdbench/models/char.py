"""The character-level model family of the `char` suite: a 66-token tokenizer and small Llama configs.

    kdbench run suite=char method=rlkd data_dir=../shared/data

The vocabulary is the 65 characters of Tiny Shakespeare in sorted order (the ids nanoGPT's
shakespeare_char uses) plus a pad token; a character outside it is an error naming it. The folder
<cache_dir>/builtin/char65-<version>/ holds the tokenizer and a base LlamaConfig, written once, so the
presets built on it (`char-teacher`, `char-student`, `char-tiny`) load through the same code as any model
folder. Every preset of this family starts from random weights: the teacher is trained from scratch by
the teacher-training step (and cached), the students by the method.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from kdbench.errors import KdbenchError
from kdbench.files import replace_folder
from kdbench.locks import file_lock

CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PAD = "<pad>"
VERSION = 1  # bump when the vocabulary or the base config changes

# The base config: what every char preset shares (each preset overrides sizes).
BASE_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": len(CHARS) + 1,
    "hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 4, "head_dim": 32, "max_position_embeddings": 256, "tie_word_embeddings": True,
    "pad_token_id": len(CHARS), "bos_token_id": None, "eos_token_id": None, "rms_norm_eps": 1e-5,
}


def char_tokenizer():
    """A PreTrainedTokenizerFast with one token per character (a BPE model without merges) and a pad token."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(CHARS)}
    vocab[PAD] = len(CHARS)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], ignore_merges=True))
    backend.decoder = decoders.Fuse()  # characters join without separators
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, model_max_length=BASE_CONFIG[
        "max_position_embeddings"])


def check_text(text: str, source: str) -> None:
    """Refuse text with a character outside the vocabulary, naming the first one and where it is."""
    allowed = set(CHARS)
    for i, c in enumerate(text):
        if c not in allowed:
            raise KdbenchError(f"{source}: character {c!r} at offset {i} is not in the char suite's {len(CHARS)}-character"
                               " vocabulary (Tiny Shakespeare's); remove it or use a word-level suite")


def base_folder(cache_dir: Path) -> Path:
    """<cache_dir>/builtin/char65-v<VERSION>/ with config.json and the tokenizer, written once (atomically)."""
    folder = cache_dir / "builtin" / f"char{len(CHARS)}-v{VERSION}"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.with_name(f".{folder.name}.lock"), lambda m: None):
        if (folder / "config.json").is_file():
            return folder
        tmp = folder.with_name(f".{folder.name}.tmp-{time.time_ns()}")
        tmp.mkdir(parents=True)
        char_tokenizer().save_pretrained(tmp)
        (tmp / "config.json").write_text(json.dumps(BASE_CONFIG, indent=2))
        replace_folder(tmp, folder)
    return folder
