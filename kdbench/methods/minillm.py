"""`minillm`: sequence-level reverse KL by policy gradient (Gu et al., ICLR 2024; LMOps `minillm/`).

    kdbench run suite=char method=minillm
    kdbench run suite=rouge method=minillm method.num_rollouts=64 method.ppo_epochs=2

Rounds (LMOps `trainer.py`, `sampler.py`): `num_rollouts` training prompts, drawn without replacement per round
from the training set, are answered by sampling from the teacher-mixed policy p̃ = (1 − α)·q + α·p (α =
`teacher_mix` 0.2; kdbench.mixed_sampling); the round's store is then trained on for `ppo_epochs` passes in
shuffled minibatches of train.batch_size (the last partial one dropped), one minibatch per micro-batch; then
the next round samples with the updated student. Each sampled token keeps, from the logits it was drawn with:

    reward       r_t = (log p(y_t) − log q_old(y_t)) / reward_scaling, clipped to ±reward_clip
    weight       w_t = q_old(y_t) / p̃(y_t)
    old log-prob log q_old(y_t)

Loss of a micro-batch (the minibatch's samples beside the data set's own batch, as LMOps concatenates its PPO
and pre-training batches):

    A_t  = whiten( Σ_{t'≥t} γ^{t'−t} r_{t'} / tokens left from t )            (γ 0.95; kdbench.losses.policy_gradient)
    pg   = mean_t max(−A_t ρ_t, −A_t clip(ρ_t, 1 − ε, 1 + ε)),  ρ_t = exp(log q − log q_old)·w_t   (ε 0.2)
    reg  = mean_t KL(q ‖ p) over the full vocabulary at each sampled position   (`single_step_reg`)
    pt   = (1 − kd_ratio)·CE + kd_ratio·KL(p ‖ q) on the data set's batch        (kd_ratio 0.5)
    L    = pg + reg + lm_coef·pt                                                 (lm_coef 1)

Defaults are the authors' GPT-2 script (`scripts/gpt2/minillm/train_base_xl.sh`): teacher_mix 0.2, γ 0.95,
ε 0.2, reward_scaling 0.5, reward_clip 100, ppo_epochs 4, num_rollouts 256, kd_ratio 0.5, lm_coef 1, sampling
at T 1 with top-k 0, top-p 1. Deviations, each for a reason:
- The pre-training batch is the suite's own training batch (the authors use a separate corpus: OpenWebText
  for GPT-2), and its distillation term is the true KL(p ‖ q), where the authors' `pt_loss` reports the cross
  entropy −Σ p log q: the same gradient, a value lower by the teacher's entropy.
- Advantages are whitened over the response tokens only (`masked_whiten`: the authors' include the padding
  up to their fixed max length).
- The reward divides by `reward_scaling`, as the authors' code does (`rewards / reward_scaling`); METHODS.md
  §7's "×0.5" reads it the other way. Whitening makes the scale matter only through the clip at ±100.
- The authors also sample a second, pure-student batch per round to log the reverse KL; kdbench skips it
  (it trains nothing) and logs the mean reward of the mixed samples instead.
- At T ≠ 1 the teacher's log-probabilities in the reward are tempered as the student's are (the authors'
  reward reads the teacher at T 1; they train at T 1, the default here).
The sampling is the runner's on-policy step (source "rollout", kdbench.rollouts) with the teacher-mixed
sampler of kdbench.mixed_sampling, not code inside the loss.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from kdbench.errors import KdbenchError
from kdbench.losses.divergences import forward_kl, log_probs, reverse_kl
from kdbench.losses.policy_gradient import clipped_policy_loss, masked_whiten, normalised_returns
from kdbench.methods.base import Step, parts_of, register_method, task_loss
from kdbench.mixed_sampling import sample_mixture
from kdbench.rollouts import DataPolicy, check_sampling


@dataclass(frozen=True)
class MiniLLMParams:
    teacher_mix: float = 0.2  # α of the sampling mixture (1 − α)·q + α·p (`teacher_mixed_alpha`)
    gamma: float = 0.95  # discount of the per-token rewards
    clip: float = 0.2  # PPO's ε (`cliprange`)
    reward_scaling: float = 0.5  # rewards are divided by it
    reward_clip: float = 100.0  # then clipped to ±reward_clip (`cliprange_reward`)
    ppo_epochs: int = 4  # passes over each round's samples
    num_rollouts: int = 256  # samples per round
    kd_ratio: float = 0.5  # share of KL(p‖q) in the data-set batch's loss (1 − kd_ratio: CE)
    lm_coef: float = 1.0  # weight of that loss
    single_step_reg: bool = True  # add the full-vocabulary KL(q‖p) at the sampled positions
    temperature: float = 1.0  # sampling temperature (also of the loss's log-probabilities)
    max_new_tokens: int = 128  # longest sampled response (capped so that prompt + response fit train.max_length)

    def __post_init__(self):
        for name in ("teacher_mix", "gamma", "kd_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise KdbenchError(f"method.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("clip", "reward_scaling", "reward_clip"):
            if not getattr(self, name) > 0:
                raise KdbenchError(f"method.{name} must be > 0, got {getattr(self, name)}")
        if self.ppo_epochs < 1 or self.num_rollouts < 1:
            raise KdbenchError(f"method.ppo_epochs and method.num_rollouts must be >= 1, got {self.ppo_epochs} and"
                               f" {self.num_rollouts}")
        if self.lm_coef < 0:
            raise KdbenchError(f"method.lm_coef must be >= 0, got {self.lm_coef}")
        check_sampling(self.temperature, self.max_new_tokens)


def _seed(*parts) -> int:
    return random.Random("/".join(map(str, parts))).getrandbits(63)


class MiniLLMRounds(DataPolicy):
    """Every micro-batch is built here: the next minibatch of the round's samples plus the data set's batch."""

    def __init__(self, params: MiniLLMParams):
        self.params = params
        self.temperature, self.max_new_tokens = params.temperature, params.max_new_tokens
        self.round, self.position = 0, 0
        self.store: list[dict] = []  # the round's samples: feature, old log-probs, rewards, weights
        self.order: list[list[int]] = []  # the round's minibatches (indices into the store), in training order
        self.reward_sum, self.reward_tokens = 0.0, 0  # raw per-token rewards log p − log q_old, all rounds

    def choose(self, step: int, max_steps: int, draw: float) -> str:
        return "rollout"

    def rollout_batch(self, rollouts, student, batch: dict, record: dict) -> dict:
        if self.position >= len(self.order):
            # the round's minibatch is the configured micro-batch: sized by the batch that happens to start the
            # round, an epoch's partial last batch (6 rows on the char track) made one round 168 steps long
            self._sample_round(rollouts, student, rollouts.batch_size or batch["input_ids"].shape[0], record)
        picked = [self.store[i] for i in self.order[self.position]]
        self.position += 1
        built = rollouts.collate([e["feature"] for e in picked] + rollouts.features(batch))
        labels = built["labels"]
        for name in ("old_logprobs", "rewards", "weights"):
            values = torch.zeros(labels.shape, dtype=torch.float32)
            for i, entry in enumerate(picked):  # a sample's scored tokens are its sampled ones, in order
                values[i, (labels[i] != -100).nonzero()[:, 0]] = torch.tensor(entry[name])
            built[f"rollout_{name}"] = values
        built["rollout_rows"] = torch.arange(labels.shape[0]) < len(picked)
        return built

    def _sample_round(self, rollouts, student, size: int, record: dict) -> None:
        p, pool = self.params, rollouts.pool
        if not pool:
            raise KdbenchError("minillm draws its prompts from the training set, and this training gave the sampler"
                               " none")
        rng = random.Random(_seed(rollouts.seed, "minillm", self.round))
        picks: list[int] = []
        while len(picks) < p.num_rollouts:  # without replacement within a pass over the prompts
            picks += rng.sample(range(len(pool)), min(len(pool), p.num_rollouts - len(picks)))
        self.store = []
        for start in range(0, len(picks), size):
            chunk = [pool[i] for i in picks[start:start + size]]
            rows = rollouts.prompts(rollouts.collate(chunk))
            samples, sampled = sample_mixture(rollouts, student, rollouts.teacher, rows, p.teacher_mix,
                                              p.max_new_tokens, p.temperature,
                                              _seed(rollouts.seed, "minillm", self.round, start))
            record["samples"] = record.get("samples", 0) + len(samples)
            record["sampled_tokens"] = record.get("sampled_tokens", 0) + sampled
            for s in samples:
                raw = [lp - lq for lp, lq in zip(s.teacher_logprobs, s.student_logprobs)]
                self.reward_sum, self.reward_tokens = self.reward_sum + sum(raw), self.reward_tokens + len(raw)
                rewards = [max(-p.reward_clip, min(p.reward_clip, r / p.reward_scaling)) for r in raw]
                weights = [math.exp(lq - lm) for lq, lm in zip(s.student_logprobs, s.mixture_logprobs)]
                self.store.append({"feature": s.feature, "old_logprobs": s.student_logprobs, "rewards": rewards,
                                   "weights": weights})
        self.order = []
        for _ in range(p.ppo_epochs):
            shuffled = rng.sample(range(len(self.store)), len(self.store))
            full = len(shuffled) // size or 1  # a store smaller than one minibatch trains as one
            self.order += [shuffled[i * size:(i + 1) * size] for i in range(full)]
        self.round, self.position = self.round + 1, 0

    def state_dict(self) -> dict:
        return {"round": self.round, "position": self.position, "store": self.store, "order": self.order,
                "reward_sum": self.reward_sum, "reward_tokens": self.reward_tokens}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.round, self.position = state["round"], state["position"]
            self.store, self.order = state["store"], state["order"]
            self.reward_sum, self.reward_tokens = state["reward_sum"], state["reward_tokens"]

    def summary(self) -> dict:
        p = self.params
        return {"teacher_mix": p.teacher_mix, "rounds": self.round, "num_rollouts": p.num_rollouts,
                "ppo_epochs": p.ppo_epochs, "temperature": p.temperature,
                "mean_token_reward": round(self.reward_sum / max(self.reward_tokens, 1), 6)}


@register_method("minillm", params=MiniLLMParams, needs=frozenset({"logits"}),
                 data_policy=lambda p, seed: MiniLLMRounds(p))
def minillm_loss(step: Step, params: MiniLLMParams, state=None):
    """MiniLLM: clipped policy gradient of the sequence-level reverse KL on teacher-mixed samples, plus the
    per-token reverse KL and the data set's CE + KL."""
    r = step.rollout
    if r is None or "rows" not in r:
        raise KdbenchError("minillm trains on batches its rounds build (the runner's on-policy step); this batch"
                           " came without them")
    s, t, mask = step.student.logits, step.teacher.logits, step.position_mask.bool()
    samples = r["rows"].bool()[:, None]
    on_samples, on_data = mask & samples, mask & ~samples
    log_q = log_probs(s, params.temperature).gather(-1, step.labels.clamp_min(0)[..., None])[..., 0]
    advantages = masked_whiten(normalised_returns(r["rewards"], on_samples, params.gamma), on_samples)
    pg = clipped_policy_loss(log_q, r["old_logprobs"], r["weights"], advantages, on_samples, params.clip)
    zero = pg.new_zeros(())
    reg = reverse_kl(s, t, on_samples, params.temperature) if params.single_step_reg else zero
    ce = task_loss(s, step.labels.masked_fill(~on_data, -100), False)
    kd = forward_kl(s, t, on_data) if params.kd_ratio > 0 else zero
    pt = (1 - params.kd_ratio) * ce + params.kd_ratio * kd
    reward = (r["rewards"] * on_samples).sum() / on_samples.sum().clamp_min(1)
    return pg + reg + params.lm_coef * pt, parts_of(pg=pg, reg=reg, pt=pt, ce=ce, reward=reward)
