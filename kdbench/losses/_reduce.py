"""Masked reduction shared by every loss: mean over the unmasked positions."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "none")


def reduce_positions(values: torch.Tensor, mask: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """Reduce per-position values `(...)` with an optional mask `(...)`.

    - `mean`: mean over positions where mask is true (all positions without a
      mask). Masked positions are replaced by 0 *before* summing, so whatever a
      masked position holds (even inf or NaN) cannot leak into the result. A
      fully masked input gives 0, not NaN: the denominator is clamped to 1.
    - `none`: the per-position values, with masked positions set to 0.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if mask is not None:
        if mask.shape != values.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match positions {tuple(values.shape)}")
        keep = mask.bool()
        values = torch.where(keep, values, torch.zeros((), dtype=values.dtype, device=values.device))
        if reduction == "none":
            return values
        return values.sum() / keep.sum().clamp_min(1)
    return values if reduction == "none" else values.mean()
