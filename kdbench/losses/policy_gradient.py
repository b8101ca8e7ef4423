"""The policy-gradient pieces of MiniLLM (Gu et al., ICLR 2024; LMOps `minillm/minillm/losses.py`).

Shapes: `(B, T)` per response token, with a boolean `mask` `(B, T)` of the tokens that carry a loss (a row's
sampled tokens, contiguous). Everything is float32 and masked positions never leak into a result.
"""

from __future__ import annotations

import torch


def normalised_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """MiniLLM's per-token return, normalised by the length still to come:

        R_t = Σ_{t' ≥ t} γ^{t'−t} r_{t'}  /  |{t' ≥ t : mask_{t'}}|

    (the authors' `_get_advantages_and_returns` before whitening; `lens` there is the count of masked
    tokens from t to the row's end, 1 where that is 0). Masked rewards count as 0. Returns `(B, T)`, 0 off
    the mask.
    """
    mask = mask.bool()
    rewards = torch.where(mask, rewards.float(), torch.zeros((), device=rewards.device))
    running = torch.zeros_like(rewards[:, 0])
    returns = torch.empty_like(rewards)
    for t in reversed(range(rewards.shape[1])):  # T is a response length: a loop over columns is cheap
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    remaining = mask.float().flip(-1).cumsum(-1).flip(-1).clamp_min(1.0)
    return torch.where(mask, returns / remaining, torch.zeros((), device=rewards.device))


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / sqrt(var + eps) over the masked entries, with the unbiased variance of `torch.var_mean`
    (the authors' `whiten`). The authors whiten the whole padded `(B, T)` tensor, padding zeros included;
    their padding runs to a fixed max length, so kdbench whitens the response tokens only (a deviation:
    otherwise the advantages would depend on how far a batch happens to be padded). 0 off the mask."""
    mask = mask.bool()
    picked = values.float()[mask]
    if picked.numel() < 2:  # one token has no spread: its whitened advantage is 0
        return torch.zeros_like(values, dtype=torch.float32)
    var, mean = torch.var_mean(picked)
    whitened = (values.float() - mean) * torch.rsqrt(var + eps)
    return torch.where(mask, whitened, torch.zeros((), device=values.device))


def clipped_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, weights: torch.Tensor,
                        advantages: torch.Tensor, mask: torch.Tensor, clip: float = 0.2) -> torch.Tensor:
    """PPO's clipped objective with MiniLLM's importance weight (the authors' `_pg_loss`):

        ρ_t = exp(log q(y_t) − log q_old(y_t)) · w_t,    w_t = q_old(y_t) / p̃(y_t)
        L   = Σ_t max(−A_t ρ_t, −A_t clip(ρ_t, 1 − ε, 1 + ε)) · mask_t / Σ_t mask_t

    `logprobs` carries the gradient (the current student), the rest are constants from sampling time:
    `old_logprobs` the student's, `weights` w (the student over the mixture p̃ it was sampled from),
    `advantages` A. Returns a scalar (0 on an empty mask).
    """
    mask = mask.bool()
    zero = torch.zeros((), device=logprobs.device)
    log_ratio = torch.where(mask, logprobs.float() - old_logprobs.float(), zero)
    ratio = log_ratio.exp() * weights.float()
    advantages = advantages.float().detach()
    per_token = torch.maximum(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip, 1.0 + clip))
    return torch.where(mask, per_token, zero).sum() / mask.sum().clamp_min(1)
