"""The first thing a person reads: can I trust this model's judgement of its own answers?

One row per dataset x model, built from the summaries only (the CLI table and the HTML
report use this same function): the trust answer from the model's verdicts on its OWN
answers (AUROC, J, how many of its wrong answers it accepts), the routing threshold and the
held-out accuracy it buys when the self-score experiment ran, then the asymmetry verdict on
each basis, with the basis in the wording.
"""

from __future__ import annotations

import math
from typing import Any


def _routing(selfscore: dict[str, Any] | None, ds: str, m: str) -> dict[str, Any] | None:
    """The highest target accuracy the held-out folds actually reach (else the lowest target)."""
    grp = ((selfscore or {}).get("datasets") or {}).get(ds, {}).get(m)
    if not grp:
        return None
    targets = grp.get("routing", {}).get("targets", {})
    best = None
    for t in sorted(targets, key=float):
        r = targets[t]
        acc = r.get("heldout_accepted_accuracy")
        if acc is not None and not (isinstance(acc, float) and math.isnan(acc)) and acc >= float(t) - 1e-9:
            best = (t, r)
    if best is None and targets:
        t = sorted(targets, key=float)[0]
        best = (t, targets[t])
    if best is None:
        return None
    t, r = best
    return {"target_accuracy": float(t), "threshold_confidence": r.get("threshold"),
            "heldout_accepted_accuracy": r.get("heldout_accepted_accuracy"),
            "heldout_escalation_rate": r.get("heldout_escalation_rate"), "n": r.get("n")}


def headline_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    exps = summary.get("experiments", {})
    asym, selfscore = exps.get("asymmetry"), exps.get("selfscore")
    rows = []
    for ds, d in ((asym or {}).get("datasets") or {}).items():
        for m, ms in d.get("models", {}).items():
            sj = ms.get("self_judge") or {}
            rows.append({"dataset": ds, "model": m, "trust": ms.get("trust") or {},
                         "auroc_own": sj.get("auroc"), "j_own": _j(sj), "wrong_accept_rate": sj.get("wrong_accept_rate"),
                         "generation_accuracy": ms.get("generation", {}).get("accuracy"),
                         "routing": _routing(selfscore, ds, m),
                         "verdict_own_answers": ms.get("verdict_own_answers"),
                         "verdict_balanced_set": ms.get("verdict_balanced_set"),
                         "gap_own_answers_j": ms.get("gap_own_answers_j"), "gap_balanced_set": ms.get("gap_balanced_set")})
    return rows


def _j(sj: dict[str, Any]) -> dict[str, Any] | None:
    """Youden's J on own answers = 2 x balanced accuracy - 1 (0 = a judge that guesses)."""
    ba = sj.get("balanced_accuracy")
    if not ba or ba.get("value") is None:
        return None
    f = (lambda x: None if x is None else 2 * x - 1)
    return {"value": f(ba["value"]), "ci_low": f(ba.get("ci_low")), "ci_high": f(ba.get("ci_high")), "n": ba["n"]}
