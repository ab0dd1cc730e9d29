"""Per-item correctness with each dataset's official metric, registered by metric name.

An experiment calls :func:`score_item` and never needs to know which dataset it has.
Abstentions are passed as the empty string: on an unanswerable question that is the
official gold answer (SQuAD 2.0) or the correct answerability call (MuSiQue-Full).
"""

from __future__ import annotations

from collections.abc import Callable

from judgegap.data.types import QAItem
from judgegap.metrics.drop import drop_item_scores, split_prediction
from judgegap.metrics.hotpotqa import hotpot_item_scores
from judgegap.metrics.musique import musique_item_scores
from judgegap.metrics.squad import squad2_item_scores
from judgegap.registry import Registry

ItemScorer = Callable[[str, QAItem], tuple[float, float]]

QA_METRICS: Registry[ItemScorer] = Registry("metric")


@QA_METRICS.register("squad2")
def _squad2(pred: str, item: QAItem) -> tuple[float, float]:
    return squad2_item_scores(pred, item.answers if item.answerable else [])


@QA_METRICS.register("drop")
def _drop(pred: str, item: QAItem) -> tuple[float, float]:
    spans = item.gold_spans or tuple((a,) for a in item.answers)
    return drop_item_scores(split_prediction(pred), spans)


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


def score_item(metric: str, prediction: str, item: QAItem) -> tuple[float, float]:
    """(EM, F1) in [0, 1] of ``prediction`` on ``item`` under the named official metric."""
    return QA_METRICS.get(metric)(prediction, item)
