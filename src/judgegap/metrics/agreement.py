"""Agreement of pairwise verdicts with reference labels, and judge biases.

Labels are strings: ``"A"`` (first response better), ``"B"``, ``"tie"``; a judge may
also say ``"inconsistent"`` (its two orders disagree) or ``None`` (reply unparseable).
Kappa and macro-F1 are computed with numpy (they run inside bootstrap loops); the
tests check them against scikit-learn's ``cohen_kappa_score`` and ``f1_score``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from judgegap.metrics.bootstrap import Estimate, bootstrap_indices, mean_ci

CLASSES = ("A", "B", "tie")


NO_VERDICT = 3  # an unparseable / missing verdict: matches no reference label, ever


def _codes(labels: Sequence[str | None]) -> np.ndarray:
    """A=0, B=1, tie=2; 'inconsistent' (the two orders disagree) counts as a tie, the usual
    convention; an unparseable verdict (None) is its own code, so it never earns credit — before,
    it was read as a tie and scored as correct on every pair the humans called a tie."""
    m = {"A": 0, "B": 1, "tie": 2}
    return np.array([m.get(x, 2) if x is not None else NO_VERDICT for x in labels], dtype=int)


def confusion(a: np.ndarray, b: np.ndarray, k: int = 4) -> np.ndarray:
    return np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(float)


def cohen_kappa(a: np.ndarray, b: np.ndarray, k: int = 4) -> float:
    """Cohen's kappa of two integer label arrays (NaN when undefined)."""
    if len(a) == 0:
        return float("nan")
    c = confusion(a, b, k)
    n = c.sum()
    po = np.trace(c) / n
    pe = float((c.sum(0) * c.sum(1)).sum()) / n**2
    if pe >= 1.0:
        return float("nan")
    return float((po - pe) / (1 - pe))


def macro_f1(ref: np.ndarray, pred: np.ndarray, k: int = 4) -> float:
    """Macro-F1 over the classes present in ``ref`` or ``pred`` (scikit-learn's default)."""
    c = confusion(ref, pred, k)
    present = (c.sum(0) + c.sum(1)) > 0
    tp = np.diag(c)
    denom = c.sum(0) + c.sum(1)
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return float(f1[present].mean()) if present.any() else float("nan")


def agreement_report(ref: Sequence[str], pred: Sequence[str | None], **kw: Any) -> dict[str, Any]:
    """Accuracy (with and without reference ties), kappa and macro-F1, each with a 95% CI.

    *With ties*: exact 3-way match (a judge's tie/inconsistent verdict counts as tie).
    *Without ties*: only items whose reference is not a tie; a judge's tie is wrong there.
    """
    r, p = _codes(ref), _codes(pred)
    n_unparsed = sum(x is None for x in pred)
    out: dict[str, Any] = {
        "accuracy_with_ties": mean_ci((r == p).astype(float), **kw),
        "kappa": bootstrap_indices(lambda i: cohen_kappa(r[i], p[i]), len(r), **kw),
        "macro_f1": bootstrap_indices(lambda i: macro_f1(r[i], p[i]), len(r), **kw),
        "judge_tie_rate": mean_ci((p == 2).astype(float), **kw),
        "n": len(r), "n_unparsed": n_unparsed,
    }
    nt = r != 2
    rr, pp = r[nt], p[nt]
    out["accuracy_without_ties"] = mean_ci((rr == pp).astype(float), **kw)
    out["kappa_without_ties"] = bootstrap_indices(lambda i: cohen_kappa(rr[i], pp[i]), len(rr), **kw)
    out["n_reference_ties"] = int((~nt).sum())
    return out


def annotator_report(votes: Sequence[Sequence[str]], pred: Sequence[str | None] | None = None,
                     **kw: Any) -> dict[str, Any]:
    """Human-human ceiling: pairwise kappa between annotators, and each vs the others' majority.

    With ``pred``, also the judge's kappa against every single annotator.
    """
    v = np.array([_codes(list(x)) for x in votes])  # items x annotators
    n, k = v.shape
    out: dict[str, Any] = {"n_annotators": k, "pairwise_kappa": {}, "leave_one_out_accuracy": {}}
    for a, b in combinations(range(k), 2):
        out["pairwise_kappa"][f"{a + 1}-{b + 1}"] = bootstrap_indices(
            lambda i, a=a, b=b: cohen_kappa(v[i, a], v[i, b]), n, **kw)
    out["mean_pairwise_kappa"] = bootstrap_indices(
        lambda i: _mean_defined([cohen_kappa(v[i, a], v[i, b]) for a, b in combinations(range(k), 2)]),
        n, **kw)
    if k >= 3:
        for a in range(k):
            others = [j for j in range(k) if j != a]
            maj = np.array([_majority_code(row[others]) for row in v])
            out["leave_one_out_accuracy"][str(a + 1)] = mean_ci((v[:, a] == maj).astype(float), **kw)
    if pred is not None:
        p = _codes(pred)
        out["judge_kappa_per_annotator"] = {
            str(a + 1): bootstrap_indices(lambda i, a=a: cohen_kappa(v[i, a], p[i]), n, **kw) for a in range(k)}
    return out


def _mean_defined(values: Sequence[float]) -> float:
    """Mean of the defined (non-NaN) values, NaN when none is defined.

    ``np.nanmean`` gives the same number but prints a RuntimeWarning for an all-NaN input,
    which a report with constant annotators (kappa undefined for every pair) would show the user.
    """
    arr = np.asarray(values, dtype=float)
    ok = ~np.isnan(arr)
    return float(arr[ok].mean()) if ok.any() else float("nan")


def _majority_code(row: np.ndarray) -> int:
    counts = np.bincount(row, minlength=3)
    top = counts.max()
    return 2 if (counts == top).sum() > 1 else int(counts.argmax())


def flip(label: str | None) -> str | None:
    """The same verdict seen from the swapped order."""
    return {"A": "B", "B": "A"}.get(label, label) if label is not None else None


def combine_orders(first: str | None, swapped: str | None) -> str | None:
    """Order-consistent verdict: kept when both orders agree, else 'inconsistent'.

    ``swapped`` is the verdict given with the responses shown in reverse order, in that
    prompt's own positions (so 'A' there means the original response B).
    """
    if first is None or swapped is None:
        return None
    back = flip(swapped)
    return first if first == back else "inconsistent"


def position_report(first: Sequence[str | None], swapped: Sequence[str | None], **kw: Any) -> dict[str, Estimate]:
    """Position consistency and first-position preference over both presentation orders."""
    ok = [(f, s) for f, s in zip(first, swapped) if f is not None and s is not None]
    cons = np.array([float(f == flip(s)) for f, s in ok])
    # first position picked, per presentation; ties are not a position pick
    shown = [x for f, s in ok for x in (f, s) if x in ("A", "B")]
    firsts = np.array([float(x == "A") for x in shown])
    return {"position_consistency": mean_ci(cons, **kw), "first_position_rate": mean_ci(firsts, **kw)}


def length_report(len_a: Sequence[int], len_b: Sequence[int], ref: Sequence[str], pred: Sequence[str | None],
                  **kw: Any) -> dict[str, Estimate]:
    """How often the longer response wins, for the judge and for the reference (non-tie, unequal length)."""
    la, lb = np.asarray(len_a), np.asarray(len_b)
    longer = np.where(la > lb, "A", np.where(lb > la, "B", ""))
    j = [float(p == lo) for lo, p in zip(longer, pred) if lo and p in ("A", "B")]
    h = [float(r == lo) for lo, r in zip(longer, ref) if lo and r in ("A", "B")]
    return {"judge_prefers_longer": mean_ci(j, **kw), "reference_prefers_longer": mean_ci(h, **kw)}
