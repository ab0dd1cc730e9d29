"""HotpotQA answer and supporting-fact metrics, following ``hotpot_evaluate_v1.py``.

The answer metric is SQuAD-1.1-style normalisation plus one special case: if either
side normalises to "yes", "no" or "noanswer" and the two differ, EM = F1 = 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from judgegap.metrics.squad import normalize_answer

_SPECIAL = ("yes", "no", "noanswer")


def f1_score(prediction: str, ground_truth: str) -> tuple[float, float, float]:
    """(F1, precision, recall) as the official script computes them."""
    p, g = normalize_answer(prediction), normalize_answer(ground_truth)
    zero = (0.0, 0.0, 0.0)
    if (p in _SPECIAL or g in _SPECIAL) and p != g:
        return zero
    p_toks, g_toks = p.split(), g.split()
    num_same = sum((Counter(p_toks) & Counter(g_toks)).values())
    if num_same == 0:
        return zero
    precision = num_same / len(p_toks)
    recall = num_same / len(g_toks)
    return 2 * precision * recall / (precision + recall), precision, recall


def exact_match_score(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def hotpot_item_scores(prediction: str, answers: Iterable[str]) -> tuple[float, float]:
    """(EM, F1) against the gold answer (max over answers when a loader gives several)."""
    golds = list(answers) or [""]
    return (max(exact_match_score(prediction, g) for g in golds),
            max(f1_score(prediction, g)[0] for g in golds))


def sp_scores(predicted: Iterable[Iterable], gold: Iterable[Iterable]) -> tuple[float, float, float, float]:
    """Supporting-fact (EM, F1, precision, recall) over (title, sentence index) pairs."""
    pred_set = {tuple(x) for x in predicted}
    gold_set = {tuple(x) for x in gold}
    tp = len(pred_set & gold_set)
    fp = len(pred_set - gold_set)
    fn = len(gold_set - pred_set)
    prec = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * prec * recall / (prec + recall) if prec + recall > 0 else 0.0
    em = 1.0 if fp + fn == 0 else 0.0
    return em, f1, prec, recall
