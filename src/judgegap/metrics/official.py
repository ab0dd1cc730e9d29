"""Score a predictions file the way each dataset's official script does.

Per-item scores come from :func:`judgegap.metrics.qa.score_item` — the same function
experiments use inside a run — so ``judgegap score`` and a run can never disagree; this
module only validates the predictions and aggregates.

Output keys follow the official scripts: SQuAD 2.0 ``exact``/``f1``/``total`` with
``HasAns_*``/``NoAns_*`` (percentages); DROP ``global_em``/``global_f1`` (fractions);
HotpotQA ``em``/``f1``/``prec``/``recall`` (+ ``sp_*``/``joint_*`` with supporting
facts); MuSiQue ``answer_em``/``answer_f1`` (+ ``support_f1``), rounded to 3 decimals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

from judgegap.data.types import QAItem
from judgegap.errors import JudgegapError, json_kind
from judgegap.metrics.hotpotqa import f1_score, sp_scores
from judgegap.metrics.musique import support_f1
from judgegap.metrics.qa import score_item
from judgegap.metrics.squad import squad2_eval_dict


def check_answer(qid: str, value: Any, allow_spans: bool = False, source: str = "predictions") -> Any:
    """A prediction as the official scripts accept it, or one clear error naming id and value.

    The official scripts crash on (or silently ``str()``) non-string answers — a JSON ``null``
    would be scored as the text "None". We refuse instead: "" is how to say "no answer".
    """
    if isinstance(value, str):
        return value
    if allow_spans and isinstance(value, list) and value and all(isinstance(x, str) for x in value):
        return value
    what = "a string or a non-empty list of strings" if allow_spans else "a string"
    raise JudgegapError(f"{source}: answer for {qid!r} is {json_kind(value)} ({str(value)[:40]}); expected {what}"
                        " (use \"\" for no answer)")


def evaluate_squad2(items: list[QAItem], preds: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    has_ans: dict[str, bool] = {}
    missing = []
    for it in items:
        if it.id not in preds:
            missing.append(it.id)
        e, f = score_item("squad2", check_answer(it.id, preds.get(it.id, "")), it)
        exact[it.id], f1[it.id], has_ans[it.id] = e, f, bool(it.answers)
    return squad2_eval_dict(exact, f1, has_ans), missing


def evaluate_drop(items: list[QAItem], preds: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    ems, f1s = [], []
    by_type: dict[str, list[tuple[float, float]]] = defaultdict(list)
    missing = []
    for it in items:
        qid = it.metadata.get("query_id", it.id)
        if qid in preds:
            em, f1 = score_item("drop", check_answer(qid, preds[qid], allow_spans=True), it)
        else:
            missing.append(qid)
            em, f1 = 0.0, 0.0
        ems.append(em)
        f1s.append(f1)
        by_type[it.metadata.get("answer_type", "")].append((em, f1))
    out: dict[str, Any] = {"global_em": float(np.mean(ems)), "global_f1": float(np.mean(f1s)), "total": len(ems)}
    out["type_breakdown"] = {
        t: {"em": float(np.mean([x[0] for x in v])), "f1": float(np.mean([x[1] for x in v])), "count": len(v)}
        for t, v in sorted(by_type.items())
    }
    return out, missing


def evaluate_hotpotqa(items: list[QAItem], preds: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    if isinstance(preds.get("answer"), dict):  # official {"answer": {...}, "sp": {...}} layout
        answers, sp = preds["answer"], preds.get("sp")
    else:
        answers, sp = preds, None
    keys = ["em", "f1", "prec", "recall"]
    if sp is not None:
        keys += ["sp_em", "sp_f1", "sp_prec", "sp_recall", "joint_em", "joint_f1", "joint_prec", "joint_recall"]
    m = dict.fromkeys(keys, 0.0)
    missing = []
    for it in items:
        gold = it.answers[0] if it.answers else ""
        if it.id in answers:
            ans = check_answer(it.id, answers[it.id])
            em, f1 = score_item("hotpotqa", ans, it)
            _, prec, rec = f1_score(ans, gold)
            m["em"] += em
            m["f1"] += f1
            m["prec"] += prec
            m["recall"] += rec
        else:
            missing.append(it.id)
            em = f1 = prec = rec = 0.0
        if sp is not None:
            sem, sf1, sprec, srec = sp_scores(sp.get(it.id, []), it.metadata.get("supporting_facts", []))
            m["sp_em"] += sem
            m["sp_f1"] += sf1
            m["sp_prec"] += sprec
            m["sp_recall"] += srec
            jp, jr = prec * sprec, rec * srec
            m["joint_em"] += em * sem
            m["joint_f1"] += 2 * jp * jr / (jp + jr) if jp + jr > 0 else 0.0
            m["joint_prec"] += jp
            m["joint_recall"] += jr
    n = len(items)
    return {k: v / n for k, v in m.items()}, missing


def evaluate_musique(items: list[QAItem], preds: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Predictions: ``{id: answer}`` or ``{id: {predicted_answer, predicted_support_idxs, predicted_answerable}}``."""
    ems, f1s, sups, answerability = [], [], [], []
    missing = []
    for it in items:
        p = preds.get(it.id)
        if it.id not in preds:
            missing.append(it.id)
            p = {}
        if not isinstance(p, dict):
            p = {"predicted_answer": check_answer(it.id, p)}
        answer = check_answer(it.id, p.get("predicted_answer", ""))
        pred_ans = p.get("predicted_answerable", answer.strip() != "")
        answerability.append(float(bool(pred_ans) == it.answerable))
        if it.answerable:
            em, f1 = score_item("musique", answer, it)
            ems.append(em)
            f1s.append(f1)
            if "predicted_support_idxs" in p:
                sups.append(support_f1(p["predicted_support_idxs"], it.metadata.get("supporting_idx", [])))
    out: dict[str, Any] = {"answer_f1": round(float(np.mean(f1s)), 3) if f1s else 0.0,
                           "answer_em": round(float(np.mean(ems)), 3) if ems else 0.0}
    if sups:
        out["support_f1"] = round(float(np.mean(sups)), 3)
    if any(not it.answerable for it in items):
        out["answerability_acc"] = round(float(np.mean(answerability)), 3)
    out["total"] = len(items)
    return out, missing


OFFICIAL_EVALUATORS = {
    "squad2": evaluate_squad2,
    "drop": evaluate_drop,
    "hotpotqa": evaluate_hotpotqa,
    "musique": evaluate_musique,
}
