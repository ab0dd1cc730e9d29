"""DROP, HotpotQA and MuSiQue metrics on hand-computed cases from the official rules."""

from __future__ import annotations

import pytest

from judgegap.data.types import QAItem
from judgegap.metrics.drop import drop_item_scores, get_metrics, normalize_answer as drop_norm
from judgegap.metrics.hotpotqa import f1_score, hotpot_item_scores, sp_scores
from judgegap.metrics.musique import musique_item_scores
from judgegap.metrics.qa import score_item


def test_drop_number_normalisation():
    assert drop_norm("3") == drop_norm("3.0") == "3.0"
    assert get_metrics("3", ("3.0",)) == (1.0, 1.0)
    assert get_metrics("three", ("3",)) == (0.0, 0.0)
    assert drop_norm("well-known") == "well known"  # hyphens split tokens


def test_drop_number_mismatch_rule():
    # gold has a number; prediction shares words but not the number -> F1 0 for that pair
    assert get_metrics("12 yards", ("15 yards",)) == (0.0, 0.0)
    # bags {15.0, yard, field, goal} vs {15.0, yards}: P=1/4, R=1/2, F1=1/3 -> 0.33
    assert get_metrics("15 yard field goal", ("15 yards",)) == (0.0, 0.33)


def test_drop_multi_span_alignment():
    # two gold spans; predicted in swapped order -> perfect by optimal assignment
    assert get_metrics(["Smith", "Jones"], ("Jones", "Smith")) == (1.0, 1.0)
    # one of two spans right: bag F1s [1, 0] -> mean 0.5
    assert get_metrics(["Smith"], ("Jones", "Smith")) == (0.0, 0.5)
    # max over gold answers, ignoring empty ones
    assert drop_item_scores("Smith", [("",), ("Jones",), ("Smith",)]) == (1.0, 1.0)


def test_drop_f1_is_rounded_to_two_decimals():
    _, f1 = get_metrics("a b c", ("a b d",))   # 'a' is an article -> {b,c} vs {b,d}: F1 = 0.5
    assert f1 == 0.5
    _, f1 = get_metrics("x y z", ("x q r",))   # 1/3 -> 0.33
    assert f1 == 0.33


def test_hotpot_yes_no_special_case():
    assert f1_score("yes", "no") == (0.0, 0.0, 0.0)
    assert f1_score("yes it is", "yes")[0] == 0.0   # gold is special and the strings differ
    assert f1_score("no", "yes")[0] == 0.0
    assert hotpot_item_scores("Yes.", ["yes"]) == (1.0, 1.0)
    assert hotpot_item_scores("noanswer", ["Paris"]) == (0.0, 0.0)


def test_hotpot_supporting_facts():
    em, f1, p, r = sp_scores([["A", 0], ["B", 1]], [["A", 0], ["B", 2]])
    assert (em, p, r) == (0.0, 0.5, 0.5) and f1 == pytest.approx(0.5)


def test_musique_aliases_and_answerability():
    assert musique_item_scores("USA", ["United States", "USA"]) == (1.0, 1.0)
    unans = QAItem(id="x", dataset="musique-full", context="c", question="q", answers=(), answerable=False)
    assert score_item("musique", "", unans) == (1.0, 1.0)
    assert score_item("musique", "Paris", unans) == (0.0, 0.0)
