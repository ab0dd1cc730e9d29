"""The transfer matrix: tuned minus base on the same held-out items, per evaluation dataset.

Both models answer and judge the same items in one evaluation run; every difference is a
paired bootstrap over items (resample items, recompute the measure for both models on that
resample, take the difference), so item difficulty cancels. Measures:

- ``gen_accuracy``: share of its answers the official metric scores correct (F1 >= threshold);
- ``judge_j_own``: Youden's J (TPR + TNR - 1) of its verdicts on its *own* answers;
- ``judge_j_balanced``: J on the balanced gold / wrong-span set;
- ``auroc_own``: AUROC of P(correct) on its own answers;
- ``accept_wrong_own``: share of its own wrong answers it accepts (the over-accepting of seed 000).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from judgegap.metrics.bootstrap import Estimate, bootstrap_indices
from judgegap.metrics.bootstrap import settings as bootstrap_settings
from judgegap.metrics.judging import auroc, balanced_accuracy

MEASURES = ("gen_accuracy", "judge_j_own", "judge_j_balanced", "auroc_own", "accept_wrong_own")


def _j(y: np.ndarray, v: np.ndarray) -> float:
    """Youden's J = TPR + TNR - 1 (NaN with one class), as asymmetry reports it."""
    return 2 * balanced_accuracy(y, v) - 1


def _accept_wrong(y: np.ndarray, v: np.ndarray) -> float:
    wrong = y == 0
    return float(np.mean(v[wrong])) if wrong.any() else float("nan")


def _arrays(gens: list[dict], judgs: list[dict], ds: str, model: str, ids: list[str]) -> dict[str, Any]:
    g = {r["item_id"]: r for r in gens if r["dataset"] == ds and r["model"] == model}
    own = {r["item_id"]: r for r in judgs if r["dataset"] == ds and r["judge"] == model and r["author"] == model}
    bal: dict[str, list[dict]] = defaultdict(list)
    for r in judgs:
        if r["dataset"] == ds and r["judge"] == model and r["author"] in ("gold", "wrong_span"):
            bal[r["item_id"]].append(r)
    return {
        "correct": np.array([g[i]["correct"] for i in ids], dtype=float),
        "own_y": np.array([own[i]["label"] if i in own else -1 for i in ids]),
        "own_p": np.array([own[i]["p_correct"] if i in own else np.nan for i in ids], dtype=float),
        "bal": [bal.get(i, []) for i in ids],
    }


def _measure(name: str, a: dict[str, Any], idx: np.ndarray) -> float:
    if name == "gen_accuracy":
        return float(a["correct"][idx].mean()) if len(idx) else float("nan")
    if name in ("judge_j_own", "auroc_own", "accept_wrong_own"):
        keep = idx[a["own_y"][idx] >= 0]
        y, p = a["own_y"][keep], a["own_p"][keep]
        if name == "auroc_own":
            return auroc(y, p)
        v = (p >= 0.5).astype(int)
        return _j(y, v) if name == "judge_j_own" else _accept_wrong(y, v)
    rows = [r for i in idx for r in a["bal"][i]]
    if not rows:
        return float("nan")
    y = np.array([r["label"] for r in rows])
    v = (np.array([r["p_correct"] for r in rows]) >= 0.5).astype(int)
    return _j(y, v)


def transfer_matrix(gens: list[dict], judgs: list[dict], base: str, tuned: str, resamples: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """dataset -> measure -> {base, tuned, diff} Estimates (as dicts), on the items both answered."""
    out: dict[str, Any] = {}
    for ds in sorted({r["dataset"] for r in gens}):
        ids = sorted({r["item_id"] for r in gens if r["dataset"] == ds and r["model"] == base}
                     & {r["item_id"] for r in gens if r["dataset"] == ds and r["model"] == tuned})
        a, b = _arrays(gens, judgs, ds, base, ids), _arrays(gens, judgs, ds, tuned, ids)
        kw = bootstrap_settings({"bootstrap_resamples": resamples, "seed": seed})
        out[ds] = {"n_items": len(ids), **paired_measures(MEASURES, _measure, a, b, len(ids), kw)}
    return out


def paired_measures(measures: tuple[str, ...], measure: Any, a: Any, b: Any, n: int,
                    kw: dict[str, Any]) -> dict[str, Any]:
    """measure -> {base, tuned, diff} Estimates (as dicts) of ``measure(name, arrays, idx)`` for the base
    arrays ``a`` and the tuned ``b``, resampled together over the same n items (paired bootstrap)."""
    return {m: {"base": bootstrap_indices(lambda i, m=m: measure(m, a, i), n, **kw).to_dict(),
                "tuned": bootstrap_indices(lambda i, m=m: measure(m, b, i), n, **kw).to_dict(),
                "diff": bootstrap_indices(lambda i, m=m: measure(m, b, i) - measure(m, a, i), n, **kw).to_dict()}
            for m in measures}


def reading(matrix: dict[str, Any], method: str) -> list[str]:
    """Plain sentences on seed 000's two cross-effects, from the CIs (never from point values alone)."""
    lines = []
    for ds, row in matrix.items():
        d_acc = Estimate.from_dict(row["gen_accuracy"]["diff"])
        d_war = Estimate.from_dict(row["accept_wrong_own"]["diff"])
        d_j = Estimate.from_dict(row["judge_j_own"]["diff"])
        n = row["n_items"]
        if method == "gen-sft":
            if d_war.ci_low > 0:
                verdict = "holds: tuning generation made it accept more of its own wrong answers"
            elif d_war.ci_high < 0:
                verdict = "reversed: it accepts fewer of its own wrong answers after generation tuning"
            else:
                verdict = "inconclusive at this n"
            lines.append(f"{ds} (n={n}): over-accepting after gen-sft — {verdict} (Δ accept-wrong"
                         f" {d_war.value:+.3f} [{d_war.ci_low:+.3f}, {d_war.ci_high:+.3f}]; Δ judge J own"
                         f" {d_j.value:+.3f}).")
        elif method == "judge-sft":
            if d_acc.ci_high < 0:
                verdict = "holds: generation accuracy fell after judge tuning"
            elif d_acc.ci_low > 0:
                verdict = "reversed: generation accuracy rose after judge tuning"
            else:
                verdict = "inconclusive at this n"
            lines.append(f"{ds} (n={n}): generation degraded by judge-sft — {verdict} (Δ accuracy"
                         f" {d_acc.value:+.3f} [{d_acc.ci_low:+.3f}, {d_acc.ci_high:+.3f}]; Δ judge J own"
                         f" {d_j.value:+.3f} [{d_j.ci_low:+.3f}, {d_j.ci_high:+.3f}]).")
    return lines


SELFSCORE_MEASURES = ("ece", "brier", "auroc", "top1_reference", "top3_reference", "top5_reference")


def _selfscore_arrays(recs: list[dict], ds: str, model: str, ids: list[str],
                      scorer: str | None = None) -> dict[str, np.ndarray]:
    """Per item: correct, the score confidence (expected score -> [0, 1]), and the rank of the
    reference score (1 + 9 F1 of the answer) in the score distribution — for ``model``'s answers as
    ``scorer`` (default: the model itself) scored them."""
    from judgegap.metrics.scores import SCORES, f1_reference_score, to_confidence

    r = {x["item_id"]: x for x in recs if x["dataset"] == ds and x["model"] == model}
    y, c, rank = [], [], []
    for i in ids:
        s = r[i]["scores"][scorer or model]
        y.append(r[i]["correct"])
        c.append(to_confidence(s["expected"]))
        order = list(np.argsort(-np.asarray(s["dist"]), kind="stable"))
        rank.append(order.index(list(SCORES).index(f1_reference_score(r[i]["f1"]))) + 1)
    return {"y": np.array(y, float), "c": np.array(c, float), "rank": np.array(rank)}


def _selfscore_measure(name: str, a: dict[str, np.ndarray], idx: np.ndarray) -> float:
    from judgegap.metrics.calibration import auroc as cal_auroc, brier, ece

    y, c = a["y"][idx], a["c"][idx]
    if name == "ece":
        return ece(y, c)
    if name == "brier":
        return brier(y, c)
    if name == "auroc":
        return cal_auroc(y, c)
    k = int(name[3])
    return float(np.mean(a["rank"][idx] <= k)) if len(idx) else float("nan")


def selfscore_transfer(recs: list[dict], base: str, tuned: str, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """dataset -> self-score measure -> {base, tuned, diff}: each model's self-score of its own answers
    (ECE, Brier and AUROC against the official metric's correctness; top-k agreement = the reference
    score 1 + 9 F1 is among its k most probable scores), paired bootstrap over the items both scored.

    Where the tuned model also scored the base model's answers (selfscore ``external_judges: [tuned]``),
    ``same_answers`` compares the two scorers on those identical answers and labels: tuning changes the
    answers too (a LoRA adapter is on for generation as well), so only this row isolates the scorer.
    """
    out: dict[str, Any] = {}
    kw = bootstrap_settings({"bootstrap_resamples": resamples, "seed": seed})
    for ds in sorted({r["dataset"] for r in recs}):
        ids = sorted({r["item_id"] for r in recs if r["dataset"] == ds and r["model"] == base}
                     & {r["item_id"] for r in recs if r["dataset"] == ds and r["model"] == tuned})
        a, b = _selfscore_arrays(recs, ds, base, ids), _selfscore_arrays(recs, ds, tuned, ids)
        row: dict[str, Any] = {"n_items": len(ids),
                               **paired_measures(SELFSCORE_MEASURES, _selfscore_measure, a, b, len(ids), kw)}
        chosen = set(ids)
        on_base = [r for r in recs if r["dataset"] == ds and r["model"] == base and r["item_id"] in chosen]
        if on_base and all(tuned in r["scores"] for r in on_base):
            row["same_answers"] = {"n_items": len(ids), "answers_of": base,
                                   **paired_measures(SELFSCORE_MEASURES, _selfscore_measure, a,
                                                     _selfscore_arrays(recs, ds, base, ids, scorer=tuned), len(ids), kw)}
        out[ds] = row
    return out
