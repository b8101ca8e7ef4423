"""The α-β divergence of ABKD (Wang et al. 2025, "ABKD: Pursuing a Proper Allocation of the Probability Mass
in Knowledge Distillation via α-β-Divergence", ICML 2025; Cichocki, Cruces & Amari 2011), teacher p,
student q:

    D(α,β)   = −1/(αβ) · Σ_v [ p^α q^β − α/(α+β)·p^(α+β) − β/(α+β)·q^(α+β) ]      α, β, α+β ≠ 0
    D(0,β)   = 1/β² · Σ_v [ q^β ln(q^β/p^β) − q^β + p^β ]                           β ≠ 0
    D(α,0)   = 1/α² · Σ_v [ p^α ln(p^α/q^α) − p^α + q^α ]                           α ≠ 0
    D(α,−α)  = 1/α² · Σ_v [ ln(q^α/p^α) + p^α/q^α − 1 ]                             α ≠ 0
    D(0,0)   = ½ · Σ_v (ln p_v − ln q_v)²

(1, 0) is KL(p ‖ q) and (0, 1) is KL(q ‖ p); α trades the focus on the teacher's large entries against
its small ones ("hardness"), β the student's ("confidence"). ABKD's GPT-2 scripts use α = 0.2, β = 0.7
(ghwang-s/abkd `scripts/gpt2/ab/train_0.1B_1.5B.sh`), no CE (`kd_ratio 1.0`), T = 1.

Deviation from the authors' code (`distillm/losses.py:ab_div`), stated: its three one-parameter cases divide
by β, α and α where the limits of the general form divide by β², α² and α² (derived by expanding the
general form to first order in the vanishing parameter; tests/test_akl_abkd.py checks the continuity).
The two agree whenever that parameter is ±1, as in the KL cases. kdbench uses the limits, so that D is
continuous in (α, β). Everything is computed from log-probabilities (p^α = exp(α ln p)), so no entry
underflows to 0 before its power is taken; an entry with a −inf logit on either side (a masked vocabulary
entry, p or q exactly 0) is left out, as the authors' code does (`inf_mask`): with a non-positive
exponent its term is infinite.
"""

from __future__ import annotations

import torch

from kdbench.losses._reduce import reduce_positions
from kdbench.losses.divergences import log_probs


def alpha_beta_divergence(student_logits, teacher_logits, mask=None, temperature=1.0, alpha=0.2, beta=0.7,
                          reduction="mean"):
    """ABKD's α-β divergence D(α,β)(p ‖ q), with its closed-form limits on α = 0, β = 0 and α + β = 0.

    Shapes: logits `(..., V)`, mask `(...)`. Returns a scalar (or `(...)` with reduction="none").
    """
    log_p = log_probs(teacher_logits.detach(), temperature)
    log_q = log_probs(student_logits, temperature)
    both = torch.isfinite(log_p) & torch.isfinite(log_q)
    zero = torch.zeros((), dtype=log_q.dtype, device=log_q.device)
    lp, lq = torch.where(both, log_p, zero), torch.where(both, log_q, zero)  # no inf reaches autograd
    a, b = float(alpha), float(beta)
    if a == 0 and b == 0:
        terms = 0.5 * (lp - lq) ** 2
    elif a == 0:
        q_b, p_b = (b * lq).exp(), (b * lp).exp()
        terms = (q_b * b * (lq - lp) - q_b + p_b) / b**2
    elif b == 0:
        p_a, q_a = (a * lp).exp(), (a * lq).exp()
        terms = (p_a * a * (lp - lq) - p_a + q_a) / a**2
    elif a + b == 0:
        terms = (a * (lq - lp) + (a * (lp - lq)).exp() - 1.0) / a**2
    else:
        s = a + b
        terms = -((a * lp + b * lq).exp() - a / s * (s * lp).exp() - b / s * (s * lq).exp()) / (a * b)
    per_pos = torch.where(both, terms, zero).sum(-1)
    return reduce_positions(per_pos, mask, reduction)
