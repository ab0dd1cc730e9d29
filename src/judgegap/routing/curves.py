"""Risk-coverage and cost curves, and threshold choice validated on held-out items.

A product accepts an answer when its self-confidence is >= t and escalates it
otherwise (to a stronger model or a person, at cost ``c`` per item). Thresholds chosen
on the same items they are evaluated on are optimistic, so ``cross_validated_threshold``
chooses t on k-1 folds and reports accuracy / escalation on the held-out fold.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def risk_coverage(conf: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """For every distinct threshold t (accept conf >= t): coverage, accepted accuracy, risk.

    Thresholds run from the highest confidence (fewest accepted) down to the lowest
    (everything accepted); ties in confidence are accepted together.
    """
    c, y = np.asarray(conf, float), np.asarray(correct, float)
    ts = np.unique(c)[::-1]
    n = len(c)
    cov, acc = [], []
    for t in ts:
        m = c >= t
        cov.append(m.sum() / n)
        acc.append(y[m].mean())
    cov_a, acc_a = np.array(cov), np.array(acc)
    return {"threshold": ts, "coverage": cov_a, "accuracy": acc_a, "risk": 1 - acc_a}


def aurc(conf: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk-coverage curve (lower is better), step-wise over thresholds."""
    rc = risk_coverage(conf, correct)
    cov = np.concatenate([[0.0], rc["coverage"]])
    return float(np.sum(np.diff(cov) * rc["risk"]))


def choose_threshold(conf: np.ndarray, correct: np.ndarray, target_accuracy: float | None = None,
                     target_escalation: float | None = None) -> float:
    """The threshold meeting a target on these items.

    * ``target_accuracy``: the lowest threshold (most coverage) whose accepted answers are at
      least that accurate; +inf (escalate everything) when none is.
    * ``target_escalation``: the lowest threshold escalating at most that fraction.
    """
    if (target_accuracy is None) == (target_escalation is None):
        raise ValueError("give exactly one of target_accuracy, target_escalation")
    rc = risk_coverage(conf, correct)
    if target_accuracy is not None:
        ok = np.where(rc["accuracy"] >= target_accuracy - 1e-12)[0]
        return float(rc["threshold"][ok.max()]) if len(ok) else float("inf")
    ok = np.where(1 - rc["coverage"] <= target_escalation + 1e-12)[0]
    return float(rc["threshold"][ok.min()]) if len(ok) else float(rc["threshold"][-1])


def cost_curve(conf: np.ndarray, correct: np.ndarray, escalation_cost: float, error_cost: float = 1.0,
               escalated_accuracy: float = 1.0) -> dict[str, Any]:
    """Expected cost per item at every threshold, and the cheapest threshold.

    cost(t) = escalation_cost * escalated + error_cost * (accepted wrong + escalated * (1 - escalated_accuracy)),
    per item; the stronger model / person is assumed right with ``escalated_accuracy``.
    """
    c, y = np.asarray(conf, float), np.asarray(correct, float)
    ts = np.concatenate([np.unique(c)[::-1], [np.inf]])
    costs, esc = [], []
    for t in ts:
        acc = c >= t
        e = 1 - acc.mean()
        wrong = np.sum(acc & (y == 0)) / len(c)
        costs.append(escalation_cost * e + error_cost * (wrong + e * (1 - escalated_accuracy)))
        esc.append(e)
    k = int(np.argmin(costs))
    return {"threshold": ts, "cost": np.array(costs), "escalation_rate": np.array(esc),
            "best_threshold": float(ts[k]), "best_cost": float(costs[k]),
            "cost_accept_all": float(costs[-2]) if len(costs) > 1 else float("nan"),
            "cost_escalate_all": float(costs[-1])}


def cross_validated_threshold(conf: np.ndarray, correct: np.ndarray, folds: int = 5, seed: int = 0,
                              **target: float) -> dict[str, Any]:
    """Choose the threshold on k-1 folds, measure on the held-out fold; pooled held-out results.

    Returns the threshold chosen on all items (what a product would deploy) and the
    held-out accepted accuracy, escalation rate and per-fold thresholds (an honest estimate
    of what that threshold does on new items).
    """
    c, y = np.asarray(conf, float), np.asarray(correct, float)
    n = len(c)
    folds = max(2, min(folds, n))
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    accepted = np.zeros(n, bool)
    fold_t = []
    for k in range(folds):
        test = parts[k]
        train = np.concatenate([parts[j] for j in range(folds) if j != k])
        t = choose_threshold(c[train], y[train], **target)
        fold_t.append(t)
        accepted[test] = c[test] >= t
    held_acc = float(y[accepted].mean()) if accepted.any() else float("nan")
    return {"threshold": choose_threshold(c, y, **target), "fold_thresholds": fold_t, "folds": folds,
            "heldout_accepted_accuracy": held_acc, "heldout_escalation_rate": float(1 - accepted.mean()),
            "heldout_n_accepted": int(accepted.sum()), "n": n, "target": target}
