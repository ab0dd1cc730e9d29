"""SQuAD 2.0 exact match and F1, following the official evaluation script v2.0.

Normalisation: lower-case, drop ASCII punctuation (``string.punctuation``), drop the
articles a/an/the as whole words, collapse whitespace. F1 is over normalised tokens;
when either side has no tokens, F1 is 1 iff both are empty. An unanswerable question's
only gold answer is the empty string, so abstaining (predicting "") scores 1.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """Official SQuAD normalisation."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def get_tokens(s: str) -> list[str]:
    if not s:
        return []
    return normalize_answer(s).split()


def compute_exact(a_gold: str, a_pred: str) -> int:
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str) -> float:
    gold_toks = get_tokens(a_gold)
    pred_toks = get_tokens(a_pred)
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    num_same = sum((Counter(gold_toks) & Counter(pred_toks)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def gold_answers(answers: Iterable[str]) -> list[str]:
    """Gold answers as the official script uses them: non-empty after normalisation, else ``[""]``."""
    golds = [a for a in answers if normalize_answer(a)]
    return golds or [""]


def squad2_item_scores(prediction: str, answers: Iterable[str]) -> tuple[float, float]:
    """(EM, F1) of one prediction: the max over gold answers."""
    golds = gold_answers(answers)
    return (float(max(compute_exact(g, prediction) for g in golds)),
            max(compute_f1(g, prediction) for g in golds))


def squad2_eval_dict(
    exact: Mapping[str, float], f1: Mapping[str, float], has_ans: Mapping[str, bool]
) -> dict[str, float | int]:
    """The official script's output keys (percentages) from per-question scores."""
    def block(qids: list[str]) -> dict[str, float | int]:
        total = len(qids)
        return {
            "exact": 100.0 * sum(exact[q] for q in qids) / total,
            "f1": 100.0 * sum(f1[q] for q in qids) / total,
            "total": total,
        }

    qids = list(exact)
    out: dict[str, float | int] = dict(block(qids))
    has = [q for q in qids if has_ans[q]]
    no = [q for q in qids if not has_ans[q]]
    if has:
        out.update({f"HasAns_{k}": v for k, v in block(has).items()})
    if no:
        out.update({f"NoAns_{k}": v for k, v in block(no).items()})
    return out
