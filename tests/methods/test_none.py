import torch
import torch.nn.functional as F
from types import SimpleNamespace

from kdbench.methods.base import Step
from kdbench.methods.none import NoneParams, none_loss
from kdbench.registry import METHODS


def test_none_is_cross_entropy_on_labels_and_needs_no_teacher():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    loss, parts = none_loss(Step(SimpleNamespace(logits=logits), None, labels, torch.ones(2, 3)), NoneParams())
    assert loss.item() == F.cross_entropy(logits, labels).item()
    assert parts == {"ce": loss.item()}
    assert METHODS.get("none").needs(NoneParams()) == frozenset()


def test_none_is_mse_for_regression():
    logits = torch.tensor([[1.0], [3.0]])
    loss, _ = none_loss(Step(SimpleNamespace(logits=logits), None, torch.tensor([0.0, 1.0]), torch.ones(2, 3), regression=True), NoneParams())
    assert loss.item() == (1.0 + 4.0) / 2
