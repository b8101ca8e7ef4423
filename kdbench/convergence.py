"""Learning curves and the convergence rule every record applies to its own curve.

A curve is the student's (or the fine-tuned teacher's) validation results during training, on a fixed
slice carved from the training data (never the dev or test split the leaderboard reports):

    points = [[step, val_loss, {metric: value}], ...]      # step 0 = before the first update

The rule, written down once (README "Learning curves and convergence"):

- Split the curve at 80% of the last step: `late` = points after 0.8·S, `early` = the points up to it
  (step 0 included). Both must be non-empty (a curve needs at least two points).
- `loss_drop` = (min(early losses) − min(late losses)) / min(early losses): the relative improvement of
  the best validation loss during the last 20% of training.
- `score_gain` = max(late scores) − max(early scores), where a point's score is the mean of its metrics
  (0–100, higher is better; classification and regression tasks have one, pure language modelling
  does not).
- converged ⇔ loss_drop < 2% and (no score, or score_gain < 1.0 point). A rising validation loss
  (overfitting) counts as converged: more steps at this learning rate do not help.

Best-so-far values rather than last values keep one noisy evaluation from deciding either way. The
learning-rate schedule decays linearly to 0, so the last 20% trains at under a fifth of the peak rate: a
curve still gaining more than the tolerances there would gain more from a longer schedule.

Why 2% and not 1%: that decay itself lowers the loss in the last 20% (annealing), so the tail drop
overstates what more steps would give. Measured in the char suite's calibration (2026-11-30,
results/calibration/): char-small (2 x 64) at lr 8e-3 dropped 2.7% over the last 20% of a 5,000-step run,
yet a run twice as long (10,000 steps) reached a best validation loss only 0.7% lower (1.4127 -> 1.4024),
and its own tail dropped 1.1%. A 1% tail tolerance would call a budget unfinished that doubling improves
by under 1%; 2% still refuses the 5,000-step curve above.

Converged is not learned: a student whose validation loss never leaves its starting value also "converges".
A second rule says whether the student learned at all, against its own start (step 0, before any update):

- learned ⇔ the best validation loss after step 0 is at least 10% below the step-0 loss, or (where the task
  has a score) the best validation score after step 0 is at least 1.0 point above the step-0 score.

Why 10%: on the committed records (2026-12-03, 289 curves) every language-modelling curve that produced text
dropped 30-84% below its step 0, while the minillm suite's kd[divergence=abkd] students, whose every answer
is empty, moved −0.4% to +2.3%. Classification students with a pretrained encoder can start near their final
loss (glue_enc fakd on MRPC: 1% lower) yet gain 2-4 accuracy points, which the score clause counts.
"""

from __future__ import annotations

from statistics import mean

LATE_SHARE = 0.2  # the share of the steps at the end whose improvement is measured
LOSS_TOLERANCE = 0.02  # relative improvement of the best validation loss (why 2%: module docstring)
SCORE_TOLERANCE = 1.0  # points (0–100) of the best validation score
LEARNED_LOSS_DROP = 0.10  # relative drop below the step-0 validation loss that counts as learning (why: docstring)

RULE = (f"converged when, over the last {LATE_SHARE:.0%} of the steps, the best validation loss improves by"
        f" < {LOSS_TOLERANCE:.0%} and the best validation score (where the task has one) by < {SCORE_TOLERANCE}"
        " point")
LEARNED_RULE = (f"learned when the best validation loss after step 0 is ≥ {LEARNED_LOSS_DROP:.0%} below the step-0"
                f" loss, or the best validation score (where the task has one) ≥ {SCORE_TOLERANCE} point above it")


def point_score(point: list) -> float | None:
    """The mean of a curve point's metrics (None when it has none)."""
    scores = point[2] if len(point) > 2 else {}
    return mean(scores.values()) if scores else None


def better_point(point: list, than: list | None) -> bool:
    """Whether a curve point beats `than` (None: nothing yet): a higher score where the task has one, else a
    lower validation loss. Ties keep the earlier point."""
    if than is None:
        return True
    score, other = point_score(point), point_score(than)
    if score is not None and other is not None:
        return score > other
    return point[1] < than[1]


def learned(points: list) -> bool | None:
    """Whether the student improved on its own start by LEARNED_RULE; None without a step-0 point and a later
    one (a resumed curve keeps its step 0, so only curves written without one lack it)."""
    start = next((p for p in points if p[0] == 0), None)
    later = [p for p in points if p[0] > 0]
    if start is None or not later:
        return None
    if start[1] > 0 and min(p[1] for p in later) <= (1 - LEARNED_LOSS_DROP) * start[1]:
        return True
    first = point_score(start)
    scores = [s for p in later if (s := point_score(p)) is not None]
    return first is not None and bool(scores) and max(scores) - first >= SCORE_TOLERANCE


def judge(points: list) -> dict:
    """{"converged": bool | None, "loss_drop": ..., "score_gain": ..., "rule": RULE, "learned": bool | None};
    converged None: too few points."""
    out = {"rule": RULE, "converged": None, "loss_drop": None, "score_gain": None, "learned": learned(points)}
    if len(points) < 2:
        return out
    last = points[-1][0]
    cut = (1 - LATE_SHARE) * last
    early = [p for p in points if p[0] <= cut]
    late = [p for p in points if p[0] > cut]
    if not early or not late:
        return out
    best_early, best_late = min(p[1] for p in early), min(p[1] for p in late)
    loss_drop = (best_early - best_late) / abs(best_early) if best_early else 0.0
    out["loss_drop"] = round(loss_drop, 6)
    converged = loss_drop < LOSS_TOLERANCE
    early_scores = [s for p in early if (s := point_score(p)) is not None]
    late_scores = [s for p in late if (s := point_score(p)) is not None]
    if early_scores and late_scores:
        gain = max(late_scores) - max(early_scores)
        out["score_gain"] = round(gain, 4)
        converged = converged and gain < SCORE_TOLERANCE
    out["converged"] = converged
    return out


def auto_eval_every(max_steps: int, eval_every: int) -> int:
    """eval_every=0 means ten evaluations per run (at least every step of a run shorter than ten steps)."""
    return eval_every if eval_every > 0 else max(1, max_steps // 10)


def curve_entry(curve: list, kept_step: int | None = None) -> dict:
    """A curve as the record keeps it: its points, the convergence verdict on them and, with train.keep=best,
    the step whose weights were kept."""
    return {"points": curve, **judge(curve), **({"kept_step": kept_step} if kept_step is not None else {})}
