import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from kdbench.errors import KdbenchError
from kdbench.methods.base import Step
from kdbench.methods.fakd import FAKDParams, build_aligner, fakd_loss, fakd_needs
from kdbench.models.layer_map import layer_pairs, uniform_layers


def tiny(layers, hidden, heads, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden, num_labels=3, attention_probs_dropout_prob=0.0,
                        hidden_dropout_prob=0.0)
    return BertForSequenceClassification(config, ).eval()


def outputs(model, ids, mask):
    model.set_attn_implementation("eager")
    return model(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)


IDS = torch.randint(0, 50, (2, 6))
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])


def test_uniform_layer_map_matches_tinybert_rule():
    assert uniform_layers(2, 6) == [3, 6]
    assert uniform_layers(4, 6) == [2, 3, 5, 6]  # 1.5 → 2, 4.5 → 5 (halves up)
    assert layer_pairs("last", 2, 6) == [(0, 0), (2, 6)]
    assert layer_pairs("[1,4]", 2, 6) == [(0, 0), (1, 1), (2, 4)]
    with pytest.raises(KdbenchError):
        layer_pairs("[1,9]", 2, 6)


def test_fakd_is_zero_when_student_equals_teacher():
    teacher = tiny(2, 16, 4)
    out = outputs(teacher, IDS, MASK)
    params = FAKDParams(ce_weight=0.0)
    aligner = build_aligner(params, teacher.config, teacher.config)
    loss, parts = fakd_loss(Step(out, out, torch.tensor([0, 1]), MASK), params, aligner)
    assert parts["feat"] == pytest.approx(0.0, abs=1e-6) and parts["attn"] == pytest.approx(0.0, abs=1e-6)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)


def test_fakd_projects_narrow_student_groups_heads_and_trains_projection():
    teacher, student = tiny(4, 32, 4, seed=0), tiny(2, 16, 2, seed=1).train()
    params = FAKDParams()
    aligner = build_aligner(params, student.config, teacher.config)
    assert len(aligner.proj.maps) == 3 and aligner.proj.maps[0].bias is None  # embeddings + 2 layers, no bias
    with torch.no_grad():
        t_out = outputs(teacher, IDS, MASK)
    s_out = outputs(student, IDS, MASK)
    loss, parts = fakd_loss(Step(s_out, t_out, torch.tensor([0, 2]), MASK), params, aligner)
    loss.backward()
    assert all(v > 0 for k, v in parts.items())
    assert aligner.proj.maps[1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_fakd_padding_does_not_change_the_loss():
    teacher, student = tiny(2, 16, 4, seed=0), tiny(1, 16, 2, seed=1)
    params = FAKDParams()
    aligner = build_aligner(params, student.config, teacher.config)
    ids = IDS[1:, :3]
    mask = torch.ones(1, 3, dtype=torch.long)
    padded_ids = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 4, dtype=torch.long)], 1)
    short = fakd_loss(Step(outputs(student, ids, mask), outputs(teacher, ids, mask), torch.tensor([1]), mask), params, aligner)
    long = fakd_loss(Step(outputs(student, padded_ids, padded_mask), outputs(teacher, padded_ids, padded_mask),
                          torch.tensor([1]), padded_mask), params, aligner)
    assert long[0].item() == pytest.approx(short[0].item(), abs=1e-4)


def test_fakd_needs_attention_only_when_beta_is_on_and_checks_heads():
    assert "attentions" not in fakd_needs(FAKDParams(beta_attn=0.0))
    assert "attentions" in fakd_needs(FAKDParams())
    with pytest.raises(KdbenchError, match="multiple"):
        build_aligner(FAKDParams(), tiny(1, 12, 3).config, tiny(1, 16, 4).config)
    build_aligner(FAKDParams(beta_attn=0.0), tiny(1, 12, 3).config, tiny(1, 16, 4).config)
