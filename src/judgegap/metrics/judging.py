"""How well verdicts match correctness: the binary-classification view of a judge.

``y`` is gold correctness (1 = the candidate answer is correct), ``p`` the judge's
P(correct). Verdicts are ``p >= threshold``. The measures are scikit-learn's definitions
computed in plain numpy: they run inside bootstrap loops (thousands of calls), where
scikit-learn's input validation costs ~5 ms a call; the tests check every one against
scikit-learn. Undefined measures (one class present) are NaN, never 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata

from judgegap.metrics.bootstrap import Estimate, bootstrap_indices


def accuracy(y: np.ndarray, v: np.ndarray) -> float:
    return float(np.mean(y == v)) if len(y) else float("nan")


def tpr(y: np.ndarray, v: np.ndarray) -> float:
    pos = y == 1
    return float(np.mean(v[pos] == 1)) if pos.any() else float("nan")


def tnr(y: np.ndarray, v: np.ndarray) -> float:
    neg = y == 0
    return float(np.mean(v[neg] == 0)) if neg.any() else float("nan")


def precision_correct(y: np.ndarray, v: np.ndarray) -> float:
    said = v == 1
    return float(np.mean(y[said] == 1)) if said.any() else float("nan")


def balanced_accuracy(y: np.ndarray, v: np.ndarray) -> float:
    """Mean of TPR and TNR; NaN when only one class is present (chance is undefined)."""
    pos = y == 1
    if pos.all() or not pos.any():
        return float("nan")
    return float((np.mean(v[pos] == 1) + np.mean(v[~pos] == 0)) / 2)


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count one half)."""
    pos = y == 1
    n1 = int(pos.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def judge_report(y_true, p_correct, threshold: float = 0.5, **kw) -> dict[str, Estimate]:
    """All judge measures with bootstrap CIs over items."""
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(p_correct, dtype=float)
    v = (p >= threshold).astype(int)
    n = len(y)
    measures: dict[str, Callable[[np.ndarray], float]] = {
        "accuracy": lambda i: accuracy(y[i], v[i]),
        "balanced_accuracy": lambda i: balanced_accuracy(y[i], v[i]),
        "tpr": lambda i: tpr(y[i], v[i]),
        "tnr": lambda i: tnr(y[i], v[i]),
        "precision_correct": lambda i: precision_correct(y[i], v[i]),
        "auroc": lambda i: auroc(y[i], p[i]),
        "brier": lambda i: brier(y[i], p[i]),
        "accept_rate": lambda i: float(np.mean(v[i])),
    }
    return {k: bootstrap_indices(f, n, **kw) for k, f in measures.items()}
