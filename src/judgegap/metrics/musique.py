"""MuSiQue answer metrics, following the official ``evaluate_v1.0.py``.

EM and F1 use SQuAD normalisation and take the max over the answer and its aliases.
Answerability (MuSiQue-Full) is scored as a binary prediction; the official *grouped*
sufficiency metric needs the paired contrast ids and is not reproduced here.
"""

from __future__ import annotations

from collections.abc import Iterable

from judgegap.metrics.squad import compute_exact, compute_f1


def musique_item_scores(prediction: str, answers: Iterable[str]) -> tuple[float, float]:
    golds = list(answers) or [""]
    return (float(max(compute_exact(g, prediction) for g in golds)),
            max(compute_f1(g, prediction) for g in golds))


def support_f1(predicted: Iterable[int], gold: Iterable[int]) -> float:
    p, g = set(predicted), set(gold)
    tp = len(p & g)
    if tp == 0:
        return 0.0
    prec, rec = tp / len(p), tp / len(g)
    return 2 * prec * rec / (prec + rec)
