"""Asymmetry statistics, verdict parsing, candidates and the report, on records made here."""

from __future__ import annotations

import math
import random

import pytest

from judgegap.data.types import QAItem
from judgegap.experiments.asymmetry import AsymmetryParams, p_correct, parse_verdict, summarize_records
from judgegap.experiments.candidates import balanced_candidates, clean_answer, is_abstention
from judgegap.metrics.qa import score_item
from judgegap.report import build_report
from judgegap.store import Store


@pytest.mark.parametrize("reply, verdict", [
    (" Yes", 1), ("No.", 0), (" yes, the answer is right", 1), ("No, it is not correct", 0),
    ("Incorrect", 0), ("The proposed answer is correct.", 1), ("", None), ("maybe", None),
    ("Yes and no", 1), ("I cannot tell", None), ("<script>", None),
])
def test_parse_verdict_on_hostile_replies(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_p_correct():
    pc, mass = p_correct(math.log(0.3), math.log(0.1))
    assert pc == pytest.approx(0.75) and mass == pytest.approx(0.4)
    assert p_correct(-math.inf, -math.inf) == (0.5, 0.0)


def test_clean_answer_and_abstention():
    assert clean_answer(" Answer: Paris.") == "Paris"
    assert clean_answer("unanswerable") == "" and is_abstention("The passage does not mention it")
    assert clean_answer("3.5") == "3.5"


def _records(n=40, seed=0, judge_says=None):
    """Two models; 'weak' is right 10% of the time, 'strong' 60%; judges' P(correct) per rule."""
    rng = random.Random(seed)
    gens, judg = [], []
    acc = {"weak": 0.1, "strong": 0.6}
    for i in range(n):
        for m in acc:
            c = int(rng.random() < acc[m])
            gens.append({"dataset": "squad2", "item_id": f"q{i}", "model": m, "correct": c, "em": float(c),
                         "f1": float(c), "raw_text": "<b>x</b>", "question_type": "what" if i % 2 else "who",
                         "hops": None, "question": "q", "context": "c", "gold": "g", "role": "generate",
                         "prediction": "x", "n_tokens": 1, "answerable": True, "template": "qa_generate@1"})
    byk = {(g["model"], g["item_id"]): g["correct"] for g in gens}
    for i in range(n):
        for judge in acc:
            for author in ["weak", "strong", "gold", "wrong_span"]:
                label = byk.get((author, f"q{i}"), 1 if author == "gold" else 0)
                p = judge_says(judge, author, label, rng) if judge_says else (0.8 if label else 0.2)
                judg.append({"dataset": "squad2", "item_id": f"q{i}", "judge": judge, "author": author,
                             "label": label, "p_correct": p, "text_reply": " Yes" if author == judge else None,
                             "text_verdict": 1 if author == judge else None, "candidate": "c",
                             "role": "self_judge" if author == judge else "judge", "label_f1": float(label),
                             "lp_yes": -0.5, "lp_no": -1.0, "verdict_mass": 0.9, "template": "qa_judge@1"})
    return gens, judg


def test_always_no_judge_looks_good_raw_but_not_chance_corrected():
    gens, judg = _records(judge_says=lambda j, a, y, rng: 0.1)
    s = summarize_records(gens, judg, AsymmetryParams())["datasets"]["squad2"]["models"]["weak"]
    assert s["self_judge"]["accuracy"]["value"] > 0.8                 # says "incorrect", author mostly wrong
    assert s["self_judge"]["balanced_accuracy"]["value"] == pytest.approx(0.5)
    assert s["balanced_set"]["accuracy"]["value"] == pytest.approx(0.5)
    assert s["balanced_set"]["label_balance"] == pytest.approx(0.5)
    assert s["balanced_set"]["youden_j"]["value"] == pytest.approx(0.0)   # a guessing judge has no skill
    assert s["gap_raw"]["value"] > 0.6                                # raw accuracy flatters it ...
    gen = s["generation"]["accuracy"]["value"]
    assert s["gap_balanced_set"]["value"] == pytest.approx(-gen)      # ... chance-corrected it is J - acc
    assert s["verdict"] != "judges better than it generates"
    strong = summarize_records(gens, judg, AsymmetryParams())["datasets"]["squad2"]["models"]["strong"]
    assert strong["verdict"] == "judges worse than it generates"


def test_perfect_judge_and_matrix_and_self_preference():
    def says(j, a, y, rng):  # perfect except: accepts its own wrong answers
        return 0.9 if (y or a == j) else 0.1
    gens, judg = _records(judge_says=says)
    d = summarize_records(gens, judg, AsymmetryParams())["datasets"]["squad2"]
    sp = d["models"]["weak"]["self_preference"]
    assert sp["own_wrong_accept_rate"] == 1.0 and sp["others_wrong_accept_rate"] == 0.0
    assert sp["difference"]["ci_low"] > 0.9
    assert d["matrix"]["weak"]["strong"]["accuracy"]["value"] == 1.0
    assert d["models"]["weak"]["balanced_set"]["auroc"]["value"] == 1.0
    assert set(d["models"]["weak"]["breakdown"]["question_type"]) == {"what", "who"}
    assert len(d["models"]["weak"]["blind_spots"]) == sum(
        1 for g in gens if g["model"] == "weak" and g["correct"] == 0)


def test_unparsed_text_verdicts_are_counted():
    gens, judg = _records(n=10)
    for r in judg:
        if r["author"] == r["judge"] == "weak" and r["item_id"] in ("q1", "q2", "q3"):
            r["text_reply"], r["text_verdict"] = "<<garbage>>", None
    s = summarize_records(gens, judg, AsymmetryParams())["datasets"]["squad2"]["models"]["weak"]
    assert s["self_judge_text"]["n_unparsed"] == 3 and s["self_judge_text"]["n_parsed"] == 7


def test_balanced_candidates_are_labelled_by_the_metric():
    ctx = "Paris is the capital of France. Berlin is the capital of Germany."
    items = [QAItem("a", "squad2", ctx, "Capital of France?", ("Paris",)),
             QAItem("b", "squad2", ctx, "Capital of Germany?", ("Berlin",)),
             QAItem("c", "hotpotqa", "A: x\n\nB: y", "Same country?", ("yes",)),
             QAItem("d", "squad2", ctx, "Capital of Spain?", (), answerable=False,
                    metadata={"plausible_answers": ["Madrid"]})]
    c = balanced_candidates(items[:2] + items[3:], "squad2", 0.5, 0)
    assert c["a"] == [("gold", "Paris"), ("wrong_span", "Berlin")]
    assert c["d"] == [("gold", "unanswerable"), ("wrong_span", "Madrid")]
    assert balanced_candidates(items[2:3], "hotpotqa", 0.5, 0)["c"][1] == ("wrong_span", "no")
    for it in items[:2]:
        assert score_item("squad2", c[it.id][1][1], it)[1] < 0.5


def test_report_is_built_from_a_store_and_escapes_model_text(tmp_path):
    gens, judg = _records(n=12)
    gens[0]["raw_text"] = "<script>window.__xss = 1; alert('x')</script>"
    gens[0]["correct"] = 0
    store = Store.in_dir(tmp_path)
    store.start_run("t", {"name": "t", "seed": 0, "models": [], "datasets": []}, {"judgegap": "x", "packages": {}}, 0)
    store.put_records("asymmetry", "generation", [(f"{g['model']}{g['item_id']}", g) for g in gens])
    store.put_records("asymmetry", "judgment", [(f"{r['judge']}{r['author']}{r['item_id']}", r) for r in judg])
    for r in judg:  # make the weak model accept its own wrong answer q0 so it is a blind spot
        if r["judge"] == r["author"] == gens[0]["model"] and r["item_id"] == "q0":
            r["p_correct"] = 0.9
    store.put_records("asymmetry", "judgment", [(f"{r['judge']}{r['author']}{r['item_id']}", r) for r in judg])
    summary = {"name": "t", "config": {"seed": 0, "models": [], "datasets": []},
               "env": {"judgegap": "x", "packages": {}},
               "experiments": {"asymmetry": summarize_records(gens, judg, AsymmetryParams())}}
    build_report(store, summary, tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "<script>window.__xss" not in html and "&lt;script&gt;window.__xss" in html
    assert html.count("data:image/png;base64,") >= 2
    assert 'id="blind-spots"' in html
