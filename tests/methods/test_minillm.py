"""minillm: the policy-gradient pieces on hand cases, the teacher-mixed sampler against generate(), the rounds
(each sample trained on ppo_epochs times, its per-token values aligned with its tokens) and the whole loss."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from kdbench.errors import KdbenchError
from kdbench.losses.divergences import forward_kl, reverse_kl
from kdbench.losses.policy_gradient import clipped_policy_loss, masked_whiten, normalised_returns
from kdbench.methods.base import Step
from kdbench.methods.minillm import MiniLLMParams, MiniLLMRounds, minillm_loss
from kdbench.mixed_sampling import sample_mixture
from kdbench.rollouts import Rollouts, on_policy_batch
from kdbench.runner import make_step
from kdbench.teacher.outputs import TeacherOut
from tests.test_rollouts import EOS, PAD, PROMPT_RESPONSE, batch, tiny_llama


def test_returns_are_discounted_sums_over_the_tokens_left():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    got = normalised_returns(rewards, mask, gamma=0.5)
    # row 0: R_2 = 3 / 1, R_1 = (2 + 0.5·3) / 2, R_0 = (1 + 0.5·2 + 0.25·3) / 3; the masked 9 counts as 0
    assert got[0].tolist() == pytest.approx([2.75 / 3, 1.75, 3.0, 0.0])
    assert got[1].tolist() == pytest.approx([4.0, 0.0, 0.0, 0.0])


def test_whitening_uses_the_masked_tokens_and_the_unbiased_variance():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -7.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    got = masked_whiten(values, mask)
    expected = (torch.tensor([1.0, 2.0, 3.0, 4.0]) - 2.5) / math.sqrt(5 / 3 + 1e-8)  # var of 1..4, n − 1
    assert got[mask].tolist() == pytest.approx(expected.tolist()) and got[~mask].tolist() == [0.0, 0.0]
    assert masked_whiten(values, torch.tensor([[1, 0, 0], [0, 0, 0]], dtype=torch.bool)).abs().sum() == 0


def test_the_clipped_objective_and_its_gradient_on_a_hand_case():
    old = torch.tensor([[-1.0, -2.0, -3.0]])
    new = old.clone().requires_grad_(True)  # ratio exp(0) = 1: ρ = w
    weights, advantages = torch.tensor([[1.1, 1.0, 1.5]]), torch.tensor([[2.0, -1.0, 1.0]])
    mask = torch.tensor([[1, 1, 1]], dtype=torch.bool)
    loss = clipped_policy_loss(new, old, weights, advantages, mask, clip=0.2)
    # max(−Aρ, −A·clip(ρ)): −2.2; +1; max(−1.5, −1.2) = −1.2 (clipped: no gradient)
    assert loss.item() == pytest.approx((-2.2 + 1.0 - 1.2) / 3)
    loss.backward()
    assert new.grad[0].tolist() == pytest.approx([-2.2 / 3, 1.0 / 3, 0.0])


def test_mixed_sampling_at_alpha_0_and_1_draws_what_generate_draws_from_the_student_and_the_teacher():
    rollouts, student, teacher = Rollouts(PAD, EOS, "right", 32), tiny_llama(0), tiny_llama(1)
    rows = rollouts.prompts(batch(PROMPT_RESPONSE))
    for seed in range(5):
        own, _ = rollouts.continue_prompts(student, rows, 10, 1.0, seed)
        mixed, _ = sample_mixture(rollouts, student, teacher, rows, 0.0, 10, 1.0, seed)
        assert [m.feature for m in mixed] == own
        theirs, _ = rollouts.continue_prompts(teacher, rows, 10, 1.0, seed)
        mixed, _ = sample_mixture(rollouts, teacher, student, rows, 0.0, 10, 1.0, seed)
        assert [m.feature for m in mixed] == theirs
    assert student.training and teacher.training  # eval mode during sampling only


def test_each_drawn_token_keeps_its_student_teacher_and_mixture_log_probabilities():
    rollouts, student, teacher = Rollouts(PAD, EOS, "right", 32), tiny_llama(0), tiny_llama(1)
    samples, sampled = sample_mixture(rollouts, student, teacher, rollouts.prompts(batch(PROMPT_RESPONSE)), 0.3, 8,
                                      1.0, seed=4)
    assert sampled == sum(len(s.student_logprobs) for s in samples)
    for s in samples:
        ids = torch.tensor([s.feature["input_ids"]])
        n = len(s.student_logprobs)
        targets = ids[0, -n:]
        with torch.no_grad():
            log_q = F.log_softmax(student(ids).logits[0, -n - 1:-1], -1).gather(-1, targets[:, None])[:, 0]
            log_p = F.log_softmax(teacher(ids).logits[0, -n - 1:-1], -1).gather(-1, targets[:, None])[:, 0]
        assert s.student_logprobs == pytest.approx(log_q.tolist(), abs=1e-5)
        assert s.teacher_logprobs == pytest.approx(log_p.tolist(), abs=1e-5)
        mixture = torch.log(0.7 * log_q.exp() + 0.3 * log_p.exp())
        assert s.mixture_logprobs == pytest.approx(mixture.tolist(), abs=1e-5)


def _rounds(**kw):
    params = MiniLLMParams(num_rollouts=6, ppo_epochs=3, max_new_tokens=4, **kw)
    pool = [{"input_ids": [5 + i, 6, 7, 8], "labels": [-100, -100, 7, 8]} for i in range(8)]
    rollouts = Rollouts(PAD, EOS, "right", 32, seed=3, teacher=tiny_llama(1), pool=pool)
    return MiniLLMRounds(params), rollouts, tiny_llama(0), batch(pool[:2])


def test_a_round_trains_each_sample_ppo_epochs_times_with_its_values_on_its_tokens():
    policy, rollouts, student, gold = _rounds()
    record, seen = {}, []
    for step in range(1, 10):  # 6 samples / minibatches of 2 = 3 per pass, 3 passes: one round
        built, fresh = on_policy_batch(policy, rollouts, gold, student, step, 100, step, record)
        assert fresh and built["rollout_rows"].tolist() == [True, True, False, False]
        scored = built["labels"] != -100
        for name in ("old_logprobs", "weights"):  # nonzero exactly on the samples' tokens
            assert ((built[f"rollout_{name}"] != 0) == (scored & built["rollout_rows"][:, None])).all()
        seen += [tuple(ids[mask.bool()].tolist()) for ids, mask in zip(built["input_ids"][:2], built["attention_mask"])]
        assert policy.round == 1
    assert record["sources"]["rollout"] == 9 and record["samples"] == 6
    stored = [tuple(e["feature"]["input_ids"]) for e in policy.store]
    assert sorted(seen) == sorted(stored * 3)  # every sample of the round, once per pass
    on_policy_batch(policy, rollouts, gold, student, 10, 100, 10, record)
    assert policy.round == 2 and record["samples"] == 12
    entry = policy.store[0]  # the student has not moved: its log-probabilities now are the old ones
    ids, n = torch.tensor([entry["feature"]["input_ids"]]), len(entry["rewards"])
    with torch.no_grad():
        log_q, log_p = (F.log_softmax(m(ids).logits[0, -n - 1:-1], -1).gather(-1, ids[0, -n:, None])[:, 0]
                        for m in (student, rollouts.teacher))
    assert entry["old_logprobs"] == pytest.approx(log_q.tolist(), abs=1e-5)
    assert entry["rewards"] == pytest.approx(((log_p - log_q) / 0.5).clamp(-100, 100).tolist(), abs=1e-4)
    weights = log_q.exp() / (0.8 * log_q.exp() + 0.2 * log_p.exp())
    assert entry["weights"] == pytest.approx(weights.tolist(), abs=1e-5)


def test_the_rounds_state_round_trips_to_the_same_next_batches():
    policy, rollouts, student, gold = _rounds()
    for step in range(1, 5):
        on_policy_batch(policy, rollouts, gold, student, step, 100, step, {})
    copy, _, _, _ = _rounds()
    copy.load_state_dict(policy.state_dict())
    for step in range(5, 14):  # into the next round
        a, _ = on_policy_batch(policy, rollouts, gold, student, step, 100, step, {})
        b, _ = on_policy_batch(copy, rollouts, gold, student, step, 100, step, {})
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_loss_is_pg_plus_reverse_kl_plus_the_data_batch_ce_and_kl():
    policy, rollouts, student, gold = _rounds()
    built, _ = on_policy_batch(policy, rollouts, gold, student, 1, 100, 1, {})
    with torch.no_grad():
        teacher_logits = rollouts.teacher(input_ids=built["input_ids"], attention_mask=built["attention_mask"]).logits
    out = student(input_ids=built["input_ids"], attention_mask=built["attention_mask"])
    step = make_step(out, TeacherOut(teacher_logits[:, :-1]), built, False)
    params = MiniLLMParams()
    loss, parts = minillm_loss(step, params)
    samples = step.rollout["rows"][:, None] & step.position_mask
    data = ~step.rollout["rows"][:, None] & step.position_mask
    s, t = step.student.logits, step.teacher.logits
    ce = F.cross_entropy(s[data], step.labels[data])
    assert parts["reg"] == pytest.approx(reverse_kl(s, t, samples).item(), abs=1e-5)
    assert parts["pt"] == pytest.approx(0.5 * ce.item() + 0.5 * forward_kl(s, t, data).item(), abs=1e-5)
    assert loss.item() == pytest.approx(parts["pg"] + parts["reg"] + parts["pt"], abs=1e-5)
    # at the sampling weights (step 1: q = q_old) the objective is the mean of −A·clip(w) or −A·w
    log_q = F.log_softmax(s, -1).gather(-1, step.labels.clamp_min(0)[..., None])[..., 0]
    assert torch.allclose(log_q[samples], step.rollout["old_logprobs"][samples], atol=1e-5)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in student.parameters() if p.requires_grad)


def test_minillm_refuses_a_batch_without_rollouts_and_bad_parameters():
    step = Step(SimpleNamespace(logits=torch.randn(1, 3, 5)), TeacherOut(torch.randn(1, 3, 5)),
                torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 4), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(KdbenchError, match="rounds build"):
        minillm_loss(step, MiniLLMParams())
    for bad, match in [({"teacher_mix": 1.5}, "teacher_mix"), ({"clip": 0}, "clip"), ({"ppo_epochs": 0}, "ppo_epochs"),
                       ({"temperature": 0}, "temperature")]:
        with pytest.raises(KdbenchError, match=match):
            MiniLLMParams(**bad)


def test_a_round_that_starts_on_a_partial_data_batch_keeps_the_configured_minibatch():
    """An epoch's last data batch may be short; the round it starts still trains minibatches of
    train.batch_size (before: one row here, so 6 x 3 = 18 steps for that round instead of 9)."""
    policy, rollouts, student, gold = _rounds()
    rollouts.batch_size = 2
    short = batch([rollouts.pool[0]])
    built, _ = on_policy_batch(policy, rollouts, short, student, 1, 100, 1, {})
    assert len(policy.order) == 9 and all(len(picked) == 2 for picked in policy.order)
    assert built["rollout_rows"].tolist() == [True, True, False]  # 2 samples beside the 1 data row
