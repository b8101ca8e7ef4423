"""kdbench.losses: public, documented, pure loss functions.

Shapes: logits `(..., V)`, optional mask `(...)`; reduction is the mean over
unmasked positions. Every function detaches the teacher argument.

    >>> from kdbench.losses import forward_kl
    >>> forward_kl(student_logits, teacher_logits, mask, temperature=2.0)
"""

from kdbench.losses.adaptive_kl import adaptive_kl
from kdbench.losses.alpha_beta import alpha_beta_divergence
from kdbench.losses.divergences import forward_kl, generalized_jsd, jsd, reverse_kl, skew_kl, skew_reverse_kl, tvd
from kdbench.losses.family import DIVERGENCES
from kdbench.losses.features import attention_kl, group_heads, hidden_mse
from kdbench.losses.ranking import rank_loss, soft_rank, topk_overlap

__all__ = [
    "DIVERGENCES",
    "adaptive_kl",
    "alpha_beta_divergence",
    "attention_kl",
    "forward_kl",
    "generalized_jsd",
    "group_heads",
    "hidden_mse",
    "jsd",
    "rank_loss",
    "reverse_kl",
    "skew_kl",
    "skew_reverse_kl",
    "soft_rank",
    "topk_overlap",
    "tvd",
]
