"""The divergence family by short name: what `method.divergence=` (kd) and `method.logits_loss=` (rlkd) accept.

Every entry has the signature `fn(student_logits, teacher_logits, mask=None, temperature=1.0, ...,
reduction="mean")`; the parameters of each one's own (β, skew α, μ, ABKD's α and β) are passed by
`kdbench.methods.kd.divergence`.
"""

from kdbench.losses.adaptive_kl import adaptive_kl
from kdbench.losses.alpha_beta import alpha_beta_divergence
from kdbench.losses.divergences import (forward_kl, generalized_jsd, jsd, reverse_kl, skew_kl, skew_reverse_kl,
                                        tvd)

DIVERGENCES = {
    "fkl": forward_kl,
    "rkl": reverse_kl,
    "jsd": jsd,
    "gjsd": generalized_jsd,
    "tvd": tvd,
    "skl": skew_kl,
    "srkl": skew_reverse_kl,
    "akl": adaptive_kl,
    "abkd": alpha_beta_divergence,
}
