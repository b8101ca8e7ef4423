"""distillm: the skew-KL loss and the adaptive student-generated-output schedule (SGO), as METHODS.md §7 states."""
from types import SimpleNamespace

import pytest
import torch

from kdbench.errors import KdbenchError
from kdbench.losses import skew_kl, skew_reverse_kl
from kdbench.methods.base import Step
from kdbench.methods.distillm import AdaptiveSGO, DistiLLMParams, distillm_loss
from kdbench.teacher.outputs import TeacherOut


def _step(s, t, labels, mask):
    return Step(SimpleNamespace(logits=s), TeacherOut(t), labels, torch.ones(2, 6), mask)


def test_the_loss_is_the_skew_divergence_plus_the_ce_share():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 20), torch.randn(2, 5, 20)
    labels = torch.randint(0, 20, (2, 5))
    mask = torch.ones(2, 5, dtype=torch.bool)
    loss, _ = distillm_loss(_step(s, t, labels, mask), DistiLLMParams())
    assert loss.item() == pytest.approx(skew_kl(s, t, mask, alpha=0.1).item(), abs=1e-6)
    loss, parts = distillm_loss(_step(s, t, labels, mask), DistiLLMParams(divergence="srkl", kd_ratio=0.5))
    ce = torch.nn.functional.cross_entropy(s.reshape(-1, 20), labels.reshape(-1))
    expected = 0.5 * ce + 0.5 * skew_reverse_kl(s, t, mask, alpha=0.1)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5) and parts["ce"] == pytest.approx(ce.item(), abs=1e-5)


def test_sgo_starts_on_gold_and_theta_rises_when_the_validation_ce_rises_by_eps():
    sgo = AdaptiveSGO(DistiLLMParams())
    assert {sgo.choose(1, 100, d) for d in (0.0, 0.5, 0.99)} == {"gold"}  # θ = 0
    sgo.observe_validation(0, 2.0)  # the reference
    sgo.observe_validation(10, 2.05)  # +0.05 < eps: no rise, the reference stays
    assert sgo.theta == 0.0 and sgo.reference == 2.0
    sgo.observe_validation(20, 2.1)
    assert sgo.theta == 0.1 and sgo.reference == 2.1
    for _ in range(15):
        sgo.observe_validation(30, sgo.reference + 1)
    assert sgo.theta == 1.0


def test_sgo_samples_below_the_decaying_share_fills_the_buffer_then_replays():
    sgo = AdaptiveSGO(DistiLLMParams(init_threshold=0.6, replay_size=3))
    # step 50 of 100: s = 0.6·0.5 = 0.3
    assert sgo.choose(50, 100, 0.2) == "student"
    assert sgo.choose(50, 100, 0.5) == "student"  # r < θ and the buffer is not full
    sgo.remember([{"input_ids": [i], "labels": [i]} for i in range(4)])  # FIFO: the oldest falls out
    assert len(sgo.buffer) == 3 and sgo.buffer[0]["input_ids"] == [1]
    assert sgo.choose(50, 100, 0.5) == "replay" and sgo.choose(50, 100, 0.7) == "gold"
    assert sgo.choose(50, 100, 0.29) == "student"
    drawn = sgo.replay(2, 0.25)
    assert len(drawn) == 2 and all(d in list(sgo.buffer) for d in drawn) and drawn == sgo.replay(2, 0.25)


def test_sgo_state_round_trips_and_off_never_samples():
    sgo = AdaptiveSGO(DistiLLMParams(init_threshold=0.3))
    sgo.observe_validation(0, 1.0)
    sgo.remember([{"input_ids": [1], "labels": [1]}])
    again = AdaptiveSGO(DistiLLMParams())
    again.load_state_dict(sgo.state_dict())
    assert again.state_dict() == sgo.state_dict() and again.summary()["theta"] == 0.3
    off = AdaptiveSGO(DistiLLMParams(init_threshold=1.0, schedule="off"))
    assert off.choose(1, 10, 0.0) == "gold"


@pytest.mark.parametrize("bad,match", [
    ({"schedule": "linear"}, "unknown method.schedule 'linear'"),
    ({"divergence": "fkl"}, "must be one of skl, srkl"),
    ({"kd_ratio": 1.5}, "method.kd_ratio"),
    ({"max_new_tokens": 0}, "generation length of 0"),
])
def test_bad_distillm_parameters_are_refused(bad, match):
    with pytest.raises(KdbenchError, match=match):
        DistiLLMParams(**bad)
