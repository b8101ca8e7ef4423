"""`fakd`: feature-alignment KD (Wang et al. 2024, arXiv 2412.19449), recommended spec of METHODS.md §3.

    kdbench run suite=glue method=fakd student=bert-4l-192 method.beta_attn=0.5

L = λ_ce·CE + α·L_feat + β·L_attn + γ·L_out, defaults α = β = γ = 1, λ_ce = 1 (GLUE).
- L_feat = mean over mapped pairs (embeddings 0→0 and m→g(m), uniform map) of
  `hidden_mse(H_s^m W_m, H_t^g(m))` over non-pad tokens; W_m is a learned,
  bias-free projection when the widths differ (identity otherwise). With
  `layernorm=true` both sides pass a parameter-free LayerNorm first.
- L_attn = mean over mapped layers m ≥ 1 of `attention_kl(A_s^m, A_t^g(m))` on
  post-softmax maps, teacher heads averaged in groups of h_t/h_s.
- L_out = T²·KL(p_t(T) ‖ p_s(T)), T = 2 on GLUE heads (MSE for regression).
Only the abstract of the paper is public; the layer map, projection, divergence
and weights are METHODS.md's recommendation, not the authors'. Attention maps
need eager attention, which is forced only while β > 0 (SDPA returns no maps),
and the student's attention dropout is turned off then, since a dropped-out
probability of 0 makes KL(A_t ‖ A_s) infinite.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kdbench.errors import KdbenchError
from kdbench.losses import attention_kl, forward_kl, hidden_mse
from kdbench.methods.base import Step, output_mse, parts_of, register_method, supervised_loss
from kdbench.models.layer_map import Projections, layer_pairs


@dataclass(frozen=True)
class FAKDParams:
    alpha_feat: float = 1.0  # α, hidden-state alignment
    beta_attn: float = 1.0  # β, attention alignment (forces eager attention when > 0)
    gamma_out: float = 1.0  # γ, output-distribution KL
    ce_weight: float = 1.0  # λ_ce, CE on labels (1 for GLUE)
    temperature: float = 2.0  # T of the output KL
    layer_map: str = "uniform"  # uniform | last | [g(1),...,g(M)]
    layernorm: bool = False  # parameter-free LayerNorm on both sides of L_feat

    def __post_init__(self):
        for key in ("alpha_feat", "beta_attn", "gamma_out", "ce_weight"):
            if getattr(self, key) < 0:
                raise KdbenchError(f"method.{key} must be >= 0, got {getattr(self, key)}")


def fakd_needs(params: FAKDParams) -> frozenset[str]:
    needs = {"logits"}
    if params.alpha_feat > 0:
        needs.add("hidden_states")
    if params.beta_attn > 0:
        needs.add("attentions")
    return frozenset(needs)


class FeatureAligner(nn.Module):
    """The layer pairs and the learned projections of one student/teacher pair."""

    def __init__(self, params: FAKDParams, student_config, teacher_config):
        super().__init__()
        m, n = student_config.num_hidden_layers, teacher_config.num_hidden_layers
        self.pairs = layer_pairs(params.layer_map, m, n)
        h_s, h_t = student_config.num_attention_heads, teacher_config.num_attention_heads
        if params.beta_attn > 0 and h_t % h_s:
            raise KdbenchError(
                f"fakd attention alignment needs teacher heads ({h_t}) to be a multiple of student heads ({h_s});"
                " pick another student or set method.beta_attn=0"
            )
        self.proj = Projections(len(self.pairs), student_config.hidden_size, teacher_config.hidden_size)


def build_aligner(params: FAKDParams, student_config, teacher_config) -> FeatureAligner:
    return FeatureAligner(params, student_config, teacher_config)


def _norm(h: torch.Tensor, on: bool) -> torch.Tensor:
    return F.layer_norm(h, h.shape[-1:]) if on else h


def fakd_teacher_layers(params: FAKDParams, student_config, teacher_config) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The teacher's hidden-state and attention indices that fakd_loss reads: the mapped layers only."""
    pairs = layer_pairs(params.layer_map, student_config.num_hidden_layers, teacher_config.num_hidden_layers)
    hidden = tuple(sorted({ti for _, ti in pairs})) if params.alpha_feat > 0 else ()
    attention = tuple(sorted({ti - 1 for si, ti in pairs if si > 0})) if params.beta_attn > 0 else ()
    return hidden, attention


@register_method("fakd", params=FAKDParams, needs=fakd_needs, build_state=build_aligner,
                 teacher_layers=fakd_teacher_layers)
def fakd_loss(step: Step, params: FAKDParams, aligner: FeatureAligner):
    """Feature alignment: CE + hidden-state MSE + attention KL + output KL."""
    s, t = step.student, step.teacher
    tokens = step.attention_mask.bool()
    zero = s.logits.new_zeros(())
    feat = attn = out = ce = zero
    if params.alpha_feat > 0:
        terms = [
            hidden_mse(
                _norm(aligner.proj(i, s.hidden_states[si]), params.layernorm),
                _norm(t.hidden_states[ti].float(), params.layernorm),
                tokens,
            )
            for i, (si, ti) in enumerate(aligner.pairs)
        ]
        feat = torch.stack(terms).mean()
    if params.beta_attn > 0:
        terms = [attention_kl(s.attentions[si - 1], t.attentions[ti - 1], tokens) for si, ti in aligner.pairs if si > 0]
        attn = torch.stack(terms).mean()
    if params.gamma_out > 0:
        if step.regression:
            out = output_mse(s.logits, t.logits)
        else:
            out = params.temperature**2 * forward_kl(s.logits, t.logits, step.position_mask, params.temperature)
    if params.ce_weight > 0:
        ce = supervised_loss(step, s.logits)
    loss = params.ce_weight * ce + params.alpha_feat * feat + params.beta_attn * attn + params.gamma_out * out
    return loss, parts_of(ce=ce, feat=feat, attn=attn, out=out)
