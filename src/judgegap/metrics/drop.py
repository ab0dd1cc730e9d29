"""DROP exact match and F1, following the official ``drop_eval.py``.

Differences from SQuAD that matter: tokens are split on spaces and hyphens; numbers are
normalised through ``float`` (so "3" == "3.0") and keep their punctuation; each gold
answer is a *bag of spans*, and predicted spans are aligned to gold spans one-to-one by
the assignment that maximises total F1 (``scipy.optimize.linear_sum_assignment``); a
span pair whose gold side contains numbers scores 0 unless they share a number; F1 is
rounded to two decimals as the official script does.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _remove_punc(text: str) -> str:
    if _is_number(text):
        return text
    return "".join(ch for ch in text if ch not in _PUNCT)


def _normalize_number(text: str) -> str:
    return str(float(text)) if _is_number(text) else text


def _normalize_token(token: str) -> str:
    t = _normalize_number(_remove_punc(token.lower()))
    return " ".join(_ARTICLES.sub(" ", t).split())


def normalize_answer(text: str) -> str:
    parts = [_normalize_token(tok) for tok in re.split(" |-", text)]
    return " ".join(p for p in parts if p.strip()).strip()


def _answer_to_bags(answer: str | Sequence[str]) -> tuple[list[str], list[set[str]]]:
    raw_spans = [answer] if isinstance(answer, str) else list(answer)
    spans = [normalize_answer(s) for s in raw_spans]
    return spans, [set(s.split()) for s in spans]


def _bag_f1(predicted: set[str], gold: set[str]) -> float:
    inter = len(gold & predicted)
    precision = 1.0 if not predicted else inter / len(predicted)
    recall = 1.0 if not gold else inter / len(gold)
    if precision == 0.0 and recall == 0.0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _match_numbers_if_present(gold: set[str], predicted: set[str]) -> bool:
    gold_numbers = {w for w in gold if _is_number(w)}
    pred_numbers = {w for w in predicted if _is_number(w)}
    return not gold_numbers or bool(gold_numbers & pred_numbers)


def _align_bags(predicted: list[set[str]], gold: list[set[str]]) -> np.ndarray:
    scores = np.zeros((len(gold), len(predicted)))
    for gi, g in enumerate(gold):
        for pi, p in enumerate(predicted):
            if _match_numbers_if_present(g, p):
                scores[gi, pi] = _bag_f1(p, g)
    rows, cols = linear_sum_assignment(-scores)
    best = np.zeros(max(len(gold), len(predicted)))
    for r, c in zip(rows, cols):
        best[r] = max(best[r], scores[r, c])
    return best


def get_metrics(predicted: str | Sequence[str], gold: str | Sequence[str]) -> tuple[float, float]:
    """(EM, F1) of a prediction against ONE gold answer (a span or tuple of spans)."""
    pred_spans, pred_bags = _answer_to_bags(predicted)
    gold_spans, gold_bags = _answer_to_bags(gold)
    em = 1.0 if set(pred_spans) == set(gold_spans) and len(pred_spans) == len(gold_spans) else 0.0
    f1 = round(float(np.mean(_align_bags(pred_bags, gold_bags))), 2)
    return em, f1


def answer_json_to_strings(answer: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    """Official conversion of a DROP answer object to (spans, type)."""
    if answer.get("number"):
        return (str(answer["number"]),), "number"
    if answer.get("spans"):
        spans = tuple(answer["spans"])
        return spans, "span" if len(spans) == 1 else "spans"
    if "date" in answer:
        d = answer["date"]
        return (f"{d['day']} {d['month']} {d['year']}",), "date"
    raise ValueError("answer has no number, spans or date")


def drop_item_scores(prediction: str | Sequence[str], gold_spans: Sequence[Sequence[str]]) -> tuple[float, float]:
    """(EM, F1): the max over the question's gold answers (answer + validated answers)."""
    best_em, best_f1 = 0.0, 0.0
    for gold in gold_spans:
        if not gold or not gold[0].strip():
            continue
        em, f1 = get_metrics(prediction, tuple(gold))
        best_em, best_f1 = max(best_em, em), max(best_f1, f1)
    return best_em, best_f1
