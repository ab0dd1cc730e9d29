"""Judging against alternatives vs judging one candidate alone, on the same items (seed 004).

Seed 004 holds that a judge rubber-stamps its own errors because a high-probability answer
*feels* right, and that comparing the answer against broader alternatives breaks that loop. The
test: the same judge, the same items, its own answer judged (a) alone, as a yes/no verdict, and
(b) among other candidates (other models' answers, a wrong passage span, the gold where
configured) with "none of these" always on offer.

*Accepting* its own answer means P(correct) > 0.5 alone, and picking it (argmax, letters'
probabilities averaged over the shown orders) among alternatives. Every difference is paired by
item with a bootstrap CI:

- ``accept_wrong``: the accept rate of its own *wrong* answers (the rubber stamp; lower is better);
- ``accept_right``: the accept rate of its own *right* answers (so a judge that rejects everything
  is not mistaken for one that stopped rubber-stamping);
- ``own_j``: accept_right - accept_wrong (Youden's J on its own answers; 0 = no discrimination);
- ``pick_accuracy``: the pick is a correct option (or "none" when no option is correct);
- ``position_consistency``: both orders give the same pick (with two orders).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from judgegap.metrics.bootstrap import bootstrap_indices, mean_ci, paired_diff_ci


def pooled_pick(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One item's pick from its records (one per shown order): each option's probability averaged
    over the orders (mapped back to the option, not the letter), the argmax, and whether the
    orders agreed. Options are identified by their text, which is unique within an item."""
    probs: dict[str, list[float]] = {}
    picks = []
    for r in records:
        names = list(r["options"]) + ["(none)"]
        for name, p in zip(names, r["probs"]):
            probs.setdefault(name, []).append(float(p))
        picks.append(names[r["pick"]])
    mean = {k: float(np.mean(v)) for k, v in probs.items()}
    best = max(mean, key=lambda k: (mean[k], k == "(none)"))  # a tie goes to "none": no forced acceptance
    first = records[0]
    own = first["options"][first["own_index"]]
    labels = dict(zip(first["options"], first["labels"]))
    any_correct = any(labels.values())
    return {"own": own, "own_label": int(labels[own]), "p_own": mean[own], "pick": best, "pick_own": int(best == own),
            "pick_correct": int(labels.get(best, int(not any_correct)) == 1) if best != "(none)" else int(not any_correct),
            "consistent": int(len(set(picks)) == 1) if len(records) > 1 else None, "n_options": len(first["options"]),
            "gold_offered": int(any(v for k, v in labels.items() if k != own))}


def compare(rows: Sequence[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """Per-item rows (``pooled_pick`` plus ``accept_single``: the yes/no verdict accepted its own
    answer, and ``p_single``) -> the measures in the module docstring, single vs alternatives."""
    if not rows:
        return {"n": 0}
    y = np.array([r["own_label"] for r in rows], int)
    a_alt = np.array([r["pick_own"] for r in rows], float)
    a_one = np.array([r["accept_single"] for r in rows], float)
    wrong, right = y == 0, y == 1

    def j(acc: np.ndarray) -> Any:
        def stat(i: np.ndarray) -> float:
            yy, aa = y[i], acc[i]
            if not (yy == 1).any() or not (yy == 0).any():
                return float("nan")
            return float(aa[yy == 1].mean() - aa[yy == 0].mean())
        return stat

    def side(acc: np.ndarray) -> dict[str, Any]:
        return {"accept_wrong": mean_ci(acc[wrong], **kw).to_dict(), "accept_right": mean_ci(acc[right], **kw).to_dict(),
                "own_j": bootstrap_indices(j(acc), len(y), **kw).to_dict()}

    out: dict[str, Any] = {
        "n": len(rows), "n_wrong": int(wrong.sum()), "n_right": int(right.sum()),
        "single": side(a_one), "alternatives": side(a_alt),
        "delta": {"accept_wrong": paired_diff_ci(a_alt[wrong], a_one[wrong], **kw).to_dict(),
                  "accept_right": paired_diff_ci(a_alt[right], a_one[right], **kw).to_dict(),
                  "own_j": bootstrap_indices(lambda i: j(a_alt)(i) - j(a_one)(i), len(y), **kw).to_dict()},
        "pick_accuracy": mean_ci([r["pick_correct"] for r in rows], **kw).to_dict(),
        "p_own_when_wrong": {"alternatives": mean_ci([r["p_own"] for r in rows if not r["own_label"]], **kw).to_dict(),
                             "single": mean_ci([r["p_single"] for r in rows if not r["own_label"]], **kw).to_dict()},
        "mean_options": float(np.mean([r["n_options"] for r in rows])),
        "share_gold_offered": float(np.mean([r["gold_offered"] for r in rows])),
    }
    cons = [r["consistent"] for r in rows if r["consistent"] is not None]
    if cons:
        out["position_consistency"] = mean_ci(cons, **kw).to_dict()
    return out


def reading(cmp: dict[str, Any]) -> str:
    """Seed 004's claim on one comparison: alternatives lower the accept rate of the judge's own
    wrong answers ("holds" when the paired CI is below 0, "does not hold" when above 0)."""
    e = cmp.get("delta", {}).get("accept_wrong", {})
    lo, hi = e.get("ci_low"), e.get("ci_high")
    if lo is None or hi is None or lo != lo or hi != hi:
        return "inconclusive at this n"
    return "holds" if hi < 0 else "does not hold" if lo > 0 else "inconclusive at this n"
