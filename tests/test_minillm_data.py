"""The MiniLLM protocol's files: the MMIDIDX token records, the prompt sets, and Dolly train decoded from GPT-2 ids."""
import json
import struct

import numpy as np
import pytest

from kdbench.data.minillm_eval import dolly_train, read_prompt_set, read_token_records
from kdbench.errors import KdbenchError


def _write_mmidx(prefix, records, magic=b"MMIDIDX\x00\x00"):
    flat = [np.array(r, dtype=np.uint16) for r in records]
    offsets = np.cumsum([0] + [2 * len(r) for r in flat[:-1]]).astype(np.int64)
    header = magic + struct.pack("<Q", 1) + bytes([8]) + struct.pack("<QQ", len(flat), 1)
    prefix.with_suffix(".idx").write_bytes(header + np.array([len(r) for r in flat], np.int32).tobytes()
                                           + offsets.tobytes() + np.zeros(1, np.int64).tobytes())
    prefix.with_suffix(".bin").write_bytes(b"".join(r.tobytes() for r in flat))


def test_token_records_split_at_the_separator(tmp_path):
    _write_mmidx(tmp_path / "train_0", [[10, 11, 65535, 12, 50256], [7, 65535, 8, 9, 50256]])
    assert read_token_records(tmp_path / "train_0") == [([10, 11], [12, 50256]), ([7], [8, 9, 50256])]


def test_a_broken_index_or_record_is_one_readable_error(tmp_path):
    _write_mmidx(tmp_path / "bad", [[1, 2, 3]], magic=b"NOTINDEX\x00")
    with pytest.raises(KdbenchError, match="not a Megatron MMIDIDX index"):
        read_token_records(tmp_path / "bad")
    _write_mmidx(tmp_path / "nosep", [[1, 2, 3]])
    with pytest.raises(KdbenchError, match="record 0 .* no prompt/response separator"):
        read_token_records(tmp_path / "nosep")
    with pytest.raises(KdbenchError, match="missing"):
        read_token_records(tmp_path / "absent")


def test_prompt_sets_take_one_or_several_references_and_name_a_bad_line(tmp_path):
    path = tmp_path / "valid.jsonl"
    path.write_text(json.dumps({"prompt": "P1", "output": "R1"}) + "\n"
                    + json.dumps({"prompt": "P2", "output": ["A", "B"]}) + "\n")
    assert read_prompt_set(path) == [("P1", ["R1"]), ("P2", ["A", "B"])]
    path.write_text(json.dumps({"prompt": "P1", "output": "R1"}) + "\n{broken\n")
    with pytest.raises(KdbenchError, match=r"valid.jsonl:2: expected a JSON object"):
        read_prompt_set(path)


def test_the_real_files_hold_what_their_readme_says(data_root):
    base = data_root / "minillm-eval"
    counts = {"dolly/valid.jsonl": (500, 500), "dolly/dev.jsonl": (1000, 1000), "self-inst/valid.jsonl": (242, 242),
              "vicuna/valid.jsonl": (80, 80), "sinst/11_/valid.jsonl": (1694, 2562)}
    for name, (rows, references) in counts.items():
        examples = read_prompt_set(base / name)
        assert (len(examples), sum(len(r) for _, r in examples)) == (rows, references), name
    train = dolly_train(data_root)
    assert len(train) == 11435
    prompt, response = train[0]
    assert prompt.startswith("Below is an instruction") and prompt.endswith("### Response:\n") and response
    assert not any("\ufffd" in p or "\ufffd" in r or r.endswith("<|endoftext|>") for p, r in train)
