"""A teacher spread over devices and disk (teacher_placement=auto) computes what the whole teacher does."""

import copy
import json

import pytest
import torch

from kdbench.cli import main
from kdbench.errors import KdbenchError
from kdbench.models.placement import is_dispatched, parse_max_memory, place_teacher, to_device


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(config).eval()


def test_a_teacher_offloaded_to_disk_gives_the_same_logits(tmp_path):
    teacher = tiny_llama()
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding in one row
    with torch.no_grad():
        whole = teacher(input_ids=ids, attention_mask=mask).logits
    size = sum(p.numel() * p.element_size() for p in teacher.parameters())
    messages = []
    placed = place_teacher(copy.deepcopy(teacher), "auto", f"cpu={size // 3}", tmp_path / "offload",
                           torch.device("cpu"), messages.append)
    assert is_dispatched(placed) and "disk" in set(placed.hf_device_map.values())
    assert any(p.device.type == "meta" for p in placed.parameters())  # not in memory: read from disk per forward
    assert "on disk" in messages[0]
    assert to_device(placed, "cpu") is placed  # moving a placed teacher whole is refused quietly
    with torch.no_grad():
        pieces = placed(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(pieces, whole, rtol=0, atol=0)


def test_device_placement_is_a_plain_move(tmp_path):
    teacher = tiny_llama()
    placed = place_teacher(teacher, "device", "", tmp_path, torch.device("cpu"))
    assert placed is teacher and not is_dispatched(placed)


@pytest.mark.parametrize("text,expected", [
    ("", {}), ("cpu=2GiB", {"cpu": "2GiB"}), ("0=30GiB, 1=30GiB,cpu=100GiB", {0: "30GiB", 1: "30GiB", "cpu": "100GiB"}),
    ("cpu=1000000", {"cpu": 1000000}),
])
def test_max_memory_parses(text, expected):
    assert parse_max_memory(text) == expected


@pytest.mark.parametrize("text", ["gpu0=3GiB", "cpu", "cpu=", "0:3GiB"])
def test_a_malformed_max_memory_is_a_readable_error(text):
    with pytest.raises(KdbenchError, match="DEVICE=SIZE"):
        parse_max_memory(text)


def test_a_run_with_the_teacher_on_disk_matches_the_default_run(tmp_path, data_root, cache_dir, capsys):
    # minilm-l6 is 90.9 MB in fp32: 70 MB of CPU memory holds its embeddings and two layers, the rest goes to disk
    base = ["run", "suite=glue_enc_tiny", "method=kd", "teacher_cache=false", f"data_dir={data_root}",
            f"cache_dir={cache_dir}"]
    assert main([*base, f"results_dir={tmp_path / 'whole'}"]) == 0
    assert main([*base, f"results_dir={tmp_path / 'placed'}", "teacher_placement=auto",
                 "teacher_max_memory=cpu=70000000"]) == 0
    assert "module groups on disk" in capsys.readouterr().out
    whole, placed = (json.loads(next((tmp_path / d / "glue_enc_tiny").glob("*.json")).read_text())
                     for d in ("whole", "placed"))
    assert placed["config"]["teacher_placement"] == "auto"
    assert placed["student_sha256"] == whole["student_sha256"]  # the same teacher outputs, bit for bit
    assert placed["metrics"] == whole["metrics"]


def test_no_room_in_memory_is_a_readable_error(tmp_path, data_root, cache_dir, capsys):
    code = main(["run", "suite=glue_enc_tiny", "method=kd", "teacher_cache=false", f"data_dir={data_root}",
                 f"cache_dir={cache_dir}", f"results_dir={tmp_path}", "teacher_placement=auto",
                 "teacher_max_memory=cpu=1000"])
    assert code == 2 and "leaves no room" in capsys.readouterr().err
