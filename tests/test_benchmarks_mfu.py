"""benchmarks/student_step_mfu.py: the parameter count behind its MFU, and its shape flags."""

import pytest

from tests.conftest import benchmark_module

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _module():
    return benchmark_module("student_step_mfu")


def test_matmul_params_leave_out_lookup_tables_but_keep_a_tied_lm_head():
    mfu = _module()
    bert = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, type_vocab_size=2))
    tables = sum(m.weight.numel() for m in bert.modules() if isinstance(m, torch.nn.Embedding))
    assert tables == (100 + 64 + 2) * 16
    assert mfu.matmul_params(bert) == sum(p.numel() for p in bert.parameters()) - tables

    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=32, tie_word_embeddings=True))
    assert llama.get_input_embeddings().weight is llama.get_output_embeddings().weight
    assert mfu.matmul_params(llama) == sum(p.numel() for p in llama.parameters())  # the tied table is the head


def test_parse_shape():
    assert _module().parse_shape("16x512") == (16, 512)
