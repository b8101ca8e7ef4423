"""Sampling from a mixture of the student and the teacher, token by token (MiniLLM's teacher-mixed sampling).

At each new token, p̃ = (1 − α)·q + α·p, with q = softmax(z_student / T) and p = softmax(z_teacher / T), and
the token is drawn from p̃ (top-k 0, top-p 1, as LMOps' `generate(..., mix_in_model, mix_in_alpha)`). α = 0
is the student's own sampling, and with the same seed it draws exactly what `model.generate` draws (tested):
the same float32 softmax, one `torch.multinomial` per token, pad after a row's EOS. Both models keep their
key-value caches, so a token costs one cached forward of each.

Besides the samples, each drawn token keeps log q(y_t), log p(y_t) and log p̃(y_t) from the very logits it
was drawn with: MiniLLM's old log-probabilities, reward and importance weight need no second forward.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class MixedSample:
    """One row: prompt + sampled response as a training feature, and per sampled token its log-probabilities
    under the student (q), the teacher (p) and the mixture it was drawn from (p̃)."""

    feature: dict
    student_logprobs: list[float]
    teacher_logprobs: list[float]
    mixture_logprobs: list[float]


def _forward(model, ids, attention, positions, cache):
    # transformers 5.x renamed `past_key_values` to `cache` (the old name warns from 5.2x); take what it has
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=True, **{name: cache})
    return out.logits[:, -1, :].float(), out[name]


@torch.no_grad()
def sample_mixture(rollouts, student, teacher, rows: list[tuple[list[int], int]], alpha: float,
                   max_new_tokens: int, temperature: float, seed: int) -> tuple[list[MixedSample], int]:
    """(one MixedSample per prompt row, tokens sampled) with `rollouts`' padding, length cap and EOS cut
    (kdbench.rollouts.Rollouts), under the global RNG forked and seeded with `seed`."""
    rows = rollouts.fit(rows)
    ids, attention, new = rollouts.left_padded(rows, max_new_tokens)
    device = next(student.parameters()).device
    ids, attention = ids.to(device), attention.to(device)
    positions = (attention.cumsum(-1) - 1).clamp_min(0)
    modes = (student.training, teacher.training)
    student.eval(), teacher.eval()
    finished = torch.zeros(len(rows), dtype=torch.bool, device=device)
    drawn, logs = [], []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        z_q, cache_q = _forward(student, ids, attention, positions, None)
        z_p, cache_p = _forward(teacher, ids, attention, positions, None)
        for _ in range(new):
            log_q, log_p = F.log_softmax(z_q / temperature, -1), F.log_softmax(z_p / temperature, -1)
            # α = 0 takes the student's softmax as is, so that its draws are generate()'s to the bit
            probs = F.softmax(z_q / temperature, -1) if alpha == 0 else (1 - alpha) * log_q.exp() + alpha * log_p.exp()
            token = torch.multinomial(probs, num_samples=1).squeeze(1)
            token = torch.where(finished, torch.full_like(token, rollouts.pad_id), token)
            pick = token[:, None]
            logs.append(torch.stack([log_q.gather(-1, pick)[:, 0], log_p.gather(-1, pick)[:, 0],
                                     probs.gather(-1, pick)[:, 0].log()], -1))
            drawn.append(token)
            if rollouts.eos_id is not None:
                finished |= token == rollouts.eos_id
            if bool(finished.all()):
                break
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], 1)
            positions = positions[:, -1:] + 1
            z_q, cache_q = _forward(student, pick, attention, positions, cache_q)
            z_p, cache_p = _forward(teacher, pick, attention, positions, cache_p)
    student.train(modes[0]), teacher.train(modes[1])
    tokens, per_token = torch.stack(drawn, 1).tolist(), torch.stack(logs, 1).tolist()
    samples, sampled = [], 0
    for (prompt, _), continuation, values in zip(rows, tokens, per_token):
        continuation = rollouts.cut(continuation)
        values = values[: len(continuation)]
        sampled += len(continuation)
        feature = {"input_ids": prompt + continuation, "labels": [-100] * len(prompt) + continuation}
        samples.append(MixedSample(feature, [v[0] for v in values], [v[1] for v in values], [v[2] for v in values]))
    return samples, sampled
