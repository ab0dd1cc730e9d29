"""Measures of answer revision over rounds (seed 004's critique protocols).

A *track* is one answer sequence over rounds 0..R on the same items: one model revising its own
answer, one debater, or a debate's vote. Everything here compares rounds of one track on the same
items, so every CI is a paired bootstrap over items:

- accuracy per round, and its change from round 0;
- flips from round 0 to round r: right -> wrong and wrong -> right, as rates over all items (so
  ``accuracy_r - accuracy_0 = wrong_to_right - right_to_wrong`` exactly), with the 2x2 counts;
- the answer-change rate from the previous round (normalised answer text differs);
- confidence (the model's verdict probability on its current answer): mean, ECE and AUROC
  against correctness;
- debate votes: majority and confidence-weighted (ReConcile-style) over the agents' answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from judgegap.metrics.bootstrap import bootstrap_indices, mean_ci, paired_diff_ci
from judgegap.metrics.calibration import auroc, ece
from judgegap.metrics.squad import normalize_answer


def same_answer(a: str, b: str) -> bool:
    """Two answers are the same when their SQuAD-normalised texts are equal (case, punctuation and
    articles ignored), so "The Broncos." and "broncos" are not counted as a change."""
    return normalize_answer(a) == normalize_answer(b)


def flip_counts(before: Sequence[int], after: Sequence[int]) -> dict[str, int]:
    """The 2x2 table of correctness before and after, by item."""
    b, a = np.asarray(before, int), np.asarray(after, int)
    return {"right_to_right": int(((b == 1) & (a == 1)).sum()), "right_to_wrong": int(((b == 1) & (a == 0)).sum()),
            "wrong_to_right": int(((b == 0) & (a == 1)).sum()), "wrong_to_wrong": int(((b == 0) & (a == 0)).sum())}


def round_measures(correct0: Sequence[int], correct: Sequence[int], changed: Sequence[int],
                   confidence: Sequence[float | None], **kw: Any) -> dict[str, Any]:
    """A track's numbers at one round against its round 0 (same items, same order)."""
    y0, y = np.asarray(correct0, float), np.asarray(correct, float)
    n = len(y)
    r2w = ((y0 == 1) & (y == 0)).astype(float)
    w2r = ((y0 == 0) & (y == 1)).astype(float)
    out: dict[str, Any] = {
        "n": n, "accuracy": mean_ci(y, **kw).to_dict(),
        "delta_accuracy": paired_diff_ci(y, y0, **kw).to_dict(),
        "right_to_wrong": mean_ci(r2w, **kw).to_dict(), "wrong_to_right": mean_ci(w2r, **kw).to_dict(),
        "flips": flip_counts(correct0, correct),
        "change_rate": mean_ci(np.asarray(changed, float), **kw).to_dict(),
    }
    if n and all(c is not None for c in confidence):
        p = np.asarray(confidence, float)
        out["confidence"] = {
            "mean": mean_ci(p, **kw).to_dict(),
            "mean_when_wrong": mean_ci(p[y == 0], **kw).to_dict(),
            "ece": bootstrap_indices(lambda i: ece(y[i], p[i]), n, **kw).to_dict(),
            "auroc": bootstrap_indices(lambda i: auroc(y[i], p[i]), n, **kw).to_dict(),
        }
    return out


def vote(answers: Sequence[str], confidences: Sequence[float | None], weighted: bool) -> int:
    """The index of the agent whose answer the group adopts.

    Majority: the normalised answer most agents gave (ties: larger summed confidence, then the
    first agent). Confidence-weighted (ReConcile's vote): the answer with the largest summed
    confidence (ties: more agents, then the first agent). Without confidences, weights are 1."""
    keys = [normalize_answer(a) for a in answers]
    conf = [1.0 if c is None else float(c) for c in confidences]
    count: dict[str, int] = {}
    mass: dict[str, float] = {}
    for k, c in zip(keys, conf):
        count[k] = count.get(k, 0) + 1
        mass[k] = mass.get(k, 0.0) + c
    order = {k: keys.index(k) for k in count}
    if weighted:
        best = max(count, key=lambda k: (mass[k], count[k], -order[k]))
    else:
        best = max(count, key=lambda k: (count[k], mass[k], -order[k]))
    return order[best]


def paired_gain_diff(gain_a: Sequence[float], gain_b: Sequence[float], **kw: Any) -> dict[str, Any]:
    """Difference of two protocols' per-item accuracy gains (round R minus round 0) on the same items."""
    return paired_diff_ci(np.asarray(gain_a, float), np.asarray(gain_b, float), **kw).to_dict()
