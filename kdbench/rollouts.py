"""On-policy data: the step the one training loop offers to any method that asks for sampled responses.

A method registers a *data policy* (`register_method(..., data_policy=make)`, `make(params, seed)`): an object
the runner asks, per micro-batch, where that batch comes from:

    "gold"     the batch as the data set gives it
    "student"  the batch's prompts, responses sampled from the current student
    "teacher"  the batch's prompts, responses sampled from the teacher (GKD's seq_kd)
    "replay"   earlier student samples, from the policy's own replay buffer (DistiLLM)
    "rollout"  a batch the policy builds itself from the data set's batch and its own store of samples
               (`DataPolicy.rollout_batch`; MiniLLM's PPO rounds)

`Rollouts` turns a batch's prompts into a sampled batch of the same form (kdbench.data.batching.LMCollator):
labels −100 on the prompt, the sampled tokens scored up to and including the first EOS. The prompt is what
the batch's labels leave unscored, the tokens before the first scored one; a plain-text block (every token
scored: perplexity, char) has none, so its first half is the prompt and the sample continues it. Sampling
runs without gradient, in eval mode, at the policy's temperature with top-k 0 and top-p 1, for at most
`max_new_tokens` (capped so prompt + sample fit `train.max_length`), under the global RNG forked and seeded
from (run seed, step, micro-batch): the training's random streams do not move, and a resumed run draws the
same samples. Which source a micro-batch takes is drawn the same way, so a checkpoint needs only the
policy's own state (`state_dict`). The teacher's outputs on a sampled batch are computed live: the
teacher-output cache is indexed by data-set rows.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch

from kdbench.data.batching import LMCollator
from kdbench.errors import KdbenchError

SOURCES = ("gold", "student", "teacher", "replay", "rollout")


def check_sampling(temperature: float, max_new_tokens: int) -> None:
    """The sampling keys every sampling method takes, checked before any model loads."""
    if not temperature > 0:
        raise KdbenchError(f"method.temperature (sampling) must be > 0, got {temperature}")
    if max_new_tokens < 1:
        raise KdbenchError(f"method.max_new_tokens must be >= 1 (a generation length of {max_new_tokens} generates"
                           " nothing)")


class DataPolicy:
    """Where each micro-batch comes from (default: always the gold batch), and the policy's own state."""

    temperature: float = 1.0  # sampling temperature
    max_new_tokens: int = 128
    greedy: bool = False  # decode the most likely token instead of sampling
    wants_responses: bool = False  # the teacher's responses are cached per training example (SeqKD)
    responses = None  # then: the kdbench.teacher.responses.TeacherResponses the run opened for it

    def choose(self, step: int, max_steps: int, draw: float) -> str:
        """One of SOURCES for the micro-batch of `step` (1-based); `draw` is uniform in [0, 1)."""
        return "gold"

    def remember(self, features: list[dict]) -> None:
        """Student samples just trained on (DistiLLM keeps them for replay)."""

    def replay(self, count: int, draw: float) -> list[dict]:
        raise NotImplementedError(f"{type(self).__name__} keeps no replay buffer")

    def rollout_batch(self, rollouts: "Rollouts", student, batch: dict, record: dict) -> dict:
        """The batch to train on when `choose` says "rollout" (counting its samples in `record`)."""
        raise NotImplementedError(f"{type(self).__name__} builds no batches of its own")

    def observe_validation(self, step: int, loss: float) -> None:
        """A validation point of the student's curve (DistiLLM raises its threshold when the loss rises)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def summary(self) -> dict:
        """What the record keeps of the policy (its parameters' current values)."""
        return {}


@dataclass
class Rollouts:
    """Samples responses for a batch's prompts (see the module docstring)."""

    pad_id: int
    eos_id: int | None
    padding_side: str
    max_length: int
    seed: int = 0
    teacher: object = None  # the teacher model, for the "teacher" source

    pool: list = None  # the training features (prompts for a policy that draws its own: MiniLLM)
    batch_size: int = 0  # the configured micro-batch (train.batch_size): MiniLLM's PPO minibatch, whatever the
    # size of the data batch that happens to start a round (an epoch's last batch may be partial)

    def collate(self, features: list[dict]) -> dict:
        return LMCollator(self.pad_id, self.padding_side)(features)

    @staticmethod
    def features(batch: dict) -> list[dict]:
        """The rows of an LMCollator batch back as features (input ids and labels of the real tokens)."""
        rows = []
        for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
            real = mask.bool()
            rows.append({"input_ids": ids[real].tolist(), "labels": labels[real].tolist()})
        return rows

    def fit(self, rows: list[tuple[list[int], int]]) -> list[tuple[list[int], int]]:
        """A prompt that fills train.max_length keeps its last tokens, leaving room for one sampled token."""
        return [(prompt[-(self.max_length - 1):], n) for prompt, n in rows]

    def prompts(self, batch: dict) -> list[tuple[list[int], int]]:
        """(prompt ids, gold response length) per row of an LMCollator batch."""
        rows = []
        for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
            real = mask.bool()
            tokens, scored = ids[real].tolist(), (labels[real] != -100).tolist()
            first = scored.index(True) if True in scored else len(tokens)
            if first == 0:  # plain text: every token is scored, so the block's first half is the prompt
                first = max(1, len(tokens) // 2)
            rows.append((tokens[:first], len(tokens) - first))
        return rows

    @torch.no_grad()
    def sample(self, model, batch: dict, max_new_tokens: int, temperature: float, seed: int,
               greedy: bool = False) -> tuple[list[dict], int]:
        """(features of prompt + sampled response, sampled tokens) for the batch's rows, from `model`;
        `greedy` decodes the most likely token instead of sampling."""
        return self.continue_prompts(model, self.prompts(batch), max_new_tokens, temperature, seed, greedy)

    def left_padded(self, rows: list[tuple[list[int], int]], max_new_tokens: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(ids, attention mask, tokens to sample) for fitted prompts, left-padded so that every row continues
        from its last real token; the sample is capped so that prompt + sample fit train.max_length."""
        width = max(len(p) for p, _ in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (prompt, _) in enumerate(rows):
            ids[i, width - len(prompt):] = torch.tensor(prompt)
            attention[i, width - len(prompt):] = 1
        return ids, attention, max(1, min(max_new_tokens, self.max_length - width))

    def cut(self, continuation: list[int]) -> list[int]:
        """A sampled continuation up to and including its first EOS (what follows is padding)."""
        if self.eos_id is not None and self.eos_id in continuation:
            return continuation[: continuation.index(self.eos_id) + 1]
        return continuation

    @torch.no_grad()
    def continue_prompts(self, model, rows: list[tuple[list[int], int]], max_new_tokens: int, temperature: float,
                         seed: int, greedy: bool = False) -> tuple[list[dict], int]:
        rows = self.fit(rows)
        ids, attention, new = self.left_padded(rows, max_new_tokens)
        width = ids.shape[1]
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            decoding = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature, "top_k": 0,
                                                            "top_p": 1.0}
            out = model.generate(input_ids=ids.to(device), attention_mask=attention.to(device), max_new_tokens=new,
                                 pad_token_id=self.pad_id, eos_token_id=self.eos_id, use_cache=True, **decoding)
        model.train(was_training)
        features, sampled = [], 0
        for (prompt, _), continuation in zip(rows, out[:, width:].tolist()):
            continuation = self.cut(continuation)
            sampled += len(continuation)
            features.append({"input_ids": prompt + continuation, "labels": [-100] * len(prompt) + continuation})
        return features, sampled


def _seed(run_seed: int, step: int, micro: int, what: str) -> int:
    return random.Random(f"{run_seed}/{step}/{micro}/{what}").getrandbits(63)


def on_policy_batch(policy: DataPolicy, rollouts: Rollouts, batch: dict, student, step: int, max_steps: int,
                    micro: int, record: dict) -> tuple[dict, bool]:
    """The batch micro-batch `micro` of `step` trains on, and whether it differs from the data set's own
    (the teacher's outputs then run live). Counts sources, samples, sampled tokens and seconds in `record`."""
    draw = random.Random(_seed(rollouts.seed, step, micro, "source")).random()
    source = policy.choose(step, max_steps, draw)
    record.setdefault("sources", {k: 0 for k in SOURCES})[source] += 1
    if source == "gold":
        return batch, False
    t0 = time.perf_counter()
    if source == "rollout":
        built = policy.rollout_batch(rollouts, student, batch, record)
        record["generation_s"] = record.get("generation_s", 0.0) + time.perf_counter() - t0
        return built, True
    if source == "replay":
        features = policy.replay(batch["input_ids"].shape[0], random.Random(_seed(rollouts.seed, step, micro,
                                                                                 "replay")).random())
    else:
        seed = _seed(rollouts.seed, step, micro, source)
        if source == "teacher" and policy.responses is not None:  # SeqKD: cached per training example
            features, sampled = _cached_teacher_responses(policy, rollouts, batch, seed)
        else:
            model = student if source == "student" else rollouts.teacher
            features, sampled = rollouts.sample(model, batch, policy.max_new_tokens, policy.temperature, seed,
                                                policy.greedy)
        record["samples"] = record.get("samples", 0) + len(features)
        record["sampled_tokens"] = record.get("sampled_tokens", 0) + sampled  # generated now (not read back)
        if source == "student":
            policy.remember(features)
    record["generation_s"] = record.get("generation_s", 0.0) + time.perf_counter() - t0
    return rollouts.collate(features), True


def _cached_teacher_responses(policy: DataPolicy, rollouts: Rollouts, batch: dict, seed: int) -> tuple[list[dict], int]:
    """The teacher's response to each row's prompt: from the policy's cache, else generated now and stored."""
    rows, store = rollouts.fit(rollouts.prompts(batch)), policy.responses
    indices = batch["example_index"].tolist()
    responses = [store.get(i, prompt) for i, (prompt, _) in zip(indices, rows)]
    missing = [j for j, r in enumerate(responses) if r is None]
    sampled = 0
    if missing:
        made, sampled = rollouts.continue_prompts(rollouts.teacher, [rows[j] for j in missing], policy.max_new_tokens,
                                                  policy.temperature, seed, policy.greedy)
        for j, feature in zip(missing, made):
            responses[j] = feature["input_ids"][len(rows[j][0]):]
            store.put(indices[j], rows[j][0], responses[j])
    features = [{"input_ids": prompt + r, "labels": [-100] * len(prompt) + r} for (prompt, _), r in zip(rows, responses)]
    return features, sampled
