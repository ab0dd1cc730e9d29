"""Self-agreement: does a judge accept what it itself finds probable, correctness held fixed?

Seed 004's explanation of self-preference is that a high-probability answer *feels* correct. For
each (judge, candidate) we have the judge's verdict P(correct), the official label, and the
candidate's log-probability under the judge *as a generator*. Two estimates of the effect of
that log-probability on the verdict with correctness held fixed, each with a bootstrap CI over
judged candidates:

- ``logit_coef``: logistic regression of the thresholded verdict on the standardised
  log-probability, with correctness and log(1 + words) as covariates (scikit-learn, no penalty);
  the coefficient is the change in log-odds of accepting per standard deviation of log-prob;
- ``stratified_spearman``: Spearman correlation of P(correct) with the log-probability inside the
  correct and the incorrect candidates separately, averaged weighted by stratum size.

Both are 0 when the judge's verdict does not track its own generation probability beyond
correctness. Reported separately for the judge's own answers and for everyone else's.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from judgegap.metrics.bootstrap import bootstrap_indices
from judgegap.metrics.calibration import spearman


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def logit_coef(logp: np.ndarray, accept: np.ndarray, correct: np.ndarray, words: np.ndarray) -> float:
    """Coefficient of standardised log-prob on acceptance, adjusting for correctness and length."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(accept)) < 2 or logp.std() == 0:
        return float("nan")
    cols = [_z(logp)]
    if len(np.unique(correct)) > 1:
        cols.append(correct.astype(float))
    if words.std() > 0:
        cols.append(_z(np.log1p(words)))
    x = np.column_stack(cols)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(penalty=None, max_iter=500).fit(x, accept)
    return float(model.coef_[0][0])


def stratified_spearman(logp: np.ndarray, p_correct: np.ndarray, correct: np.ndarray) -> float:
    """Within-stratum Spearman(log-prob, P(correct)), weighted by stratum size."""
    total, acc = 0, 0.0
    for c in (0, 1):
        m = correct == c
        if m.sum() >= 3 and logp[m].std() > 0 and p_correct[m].std() > 0:
            acc += m.sum() * spearman(logp[m], p_correct[m])
            total += int(m.sum())
    return acc / total if total else float("nan")


def self_agreement(rows: list[dict[str, Any]], kw: dict[str, Any]) -> dict[str, Any]:
    """rows: {logp, p_correct, label, words}; returns both estimates with CIs and the counts."""
    if not rows:
        return {"n": 0}
    lp = np.array([r["logp"] for r in rows], float)
    pc = np.array([r["p_correct"] for r in rows], float)
    y = np.array([r["label"] for r in rows], int)
    w = np.array([r["words"] for r in rows], float)
    acc = (pc >= 0.5).astype(int)
    return {
        "n": len(rows), "n_correct": int(y.sum()), "accept_rate": float(acc.mean()),
        "logit_coef": bootstrap_indices(lambda i: logit_coef(lp[i], acc[i], y[i], w[i]), len(rows), **kw).to_dict(),
        "stratified_spearman": bootstrap_indices(lambda i: stratified_spearman(lp[i], pc[i], y[i]), len(rows),
                                                 **kw).to_dict(),
    }
