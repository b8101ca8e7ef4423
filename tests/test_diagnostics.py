"""Teacher–student diagnostics against hand-computed cases."""

import pytest
import torch

from kdbench.diagnostics import classification, ece, kl_per_position, topk_agreement


def test_ece_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 0.6 (right): bins (0.867,0.933] and (0.533,0.6]
    # bin 0.9: acc 0.5, conf 0.9 → |0.4| · 2/4 = 0.2 ; bin 0.6: acc 1, conf 0.6 → 0.4 · 2/4 = 0.2 → ECE 0.4 = 40
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 1, 0])
    assert ece(probs, labels) == pytest.approx(40.0)


def test_ece_of_a_calibrated_predictor_is_zero():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert ece(probs, torch.tensor([0, 1])) == 0.0


def test_topk_agreement_by_hand():
    teacher = torch.tensor([[5.0, 4.0, 3.0, 0.0], [5.0, 4.0, 3.0, 0.0]])
    student = torch.tensor([[4.0, 5.0, 0.0, 3.0], [5.0, 4.0, 3.0, 0.0]])
    overlap, identical = topk_agreement(student, teacher, k=2)
    # row 0: teacher top-2 {0,1} in order (0,1), student (1,0): same set, different order
    assert overlap.tolist() == [1.0, 1.0] and identical.tolist() == [0.0, 1.0]
    overlap, _ = topk_agreement(student, teacher, k=3)
    assert overlap[0].item() == pytest.approx(2 / 3)  # {0,1,2} vs {1,0,3}


def test_kl_is_zero_for_identical_logits_and_positive_otherwise():
    a = torch.randn(4, 7)
    assert kl_per_position(a, a).abs().max().item() < 1e-6
    assert (kl_per_position(a, torch.randn(4, 7)) > 0).all()


def test_classification_diagnostics_keys_and_agreement():
    s = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    t = torch.tensor([[3.0, 0.0], [3.0, 0.0], [3.0, 0.0]])
    out = classification(s, t, [0, 1, 1])
    assert out["agree@1"] == pytest.approx(200 / 3) and set(out) == {"agree@1", "kl_teacher", "ece"}
