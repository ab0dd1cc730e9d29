"""Per-item correctness with each dataset's official metric, registered by metric name.

This is the ONE per-item scoring path: experiments (answers, candidate labels) and
``judgegap score`` (via :mod:`judgegap.metrics.official`) both call :func:`score_item`,
so a number inside a run can never differ from the number the official script gives.
Abstentions are passed as the empty string: on an unanswerable question that is the
official gold answer (SQuAD 2.0) or the correct answerability call (MuSiQue-Full).
A DROP prediction may be a list of spans, as the official DROP script allows; a string
is ONE span (the official script never splits a string).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from judgegap.data.types import QAItem
from judgegap.metrics.drop import drop_item_scores
from judgegap.metrics.hotpotqa import hotpot_item_scores
from judgegap.metrics.musique import musique_item_scores
from judgegap.metrics.squad import squad2_item_scores
from judgegap.registry import Registry

Prediction = str | Sequence[str]
ItemScorer = Callable[[Prediction, QAItem], tuple[float, float]]

QA_METRICS: Registry[ItemScorer] = Registry("metric")


@QA_METRICS.register("squad2")
def _squad2(pred: str, item: QAItem) -> tuple[float, float]:
    return squad2_item_scores(pred, item.answers if item.answerable else [])


@QA_METRICS.register("drop")
def _drop(pred: Prediction, item: QAItem) -> tuple[float, float]:
    spans = item.gold_spans or tuple((a,) for a in item.answers)
    return drop_item_scores(pred, spans)


@QA_METRICS.register("hotpotqa")
def _hotpot(pred: str, item: QAItem) -> tuple[float, float]:
    return hotpot_item_scores(pred, item.answers)


@QA_METRICS.register("musique")
def _musique(pred: str, item: QAItem) -> tuple[float, float]:
    if not item.answerable:
        abstained = float(pred.strip() == "")
        return abstained, abstained
    if pred.strip() == "":
        return 0.0, 0.0
    return musique_item_scores(pred, item.answers)


def score_item(metric: str, prediction: Prediction, item: QAItem) -> tuple[float, float]:
    """(EM, F1) in [0, 1] of ``prediction`` on ``item`` under the named official metric."""
    if metric != "drop" and not isinstance(prediction, str):
        raise TypeError(f"{metric} predictions are strings, got {type(prediction).__name__}")
    return QA_METRICS.get(metric)(prediction, item)
