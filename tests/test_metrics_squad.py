"""SQuAD 2.0 EM/F1 against the official script's published rules and an independent implementation."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from judgegap.data import load_dataset
from judgegap.metrics.official import evaluate_squad2
from judgegap.metrics.squad import compute_exact, compute_f1, normalize_answer, squad2_item_scores


@pytest.mark.parametrize("raw, norm", [
    ("The Eiffel Tower", "eiffel tower"),
    ("  an apple, a pear & THE plum!  ", "apple pear plum"),
    ("theory of the atom", "theory of atom"),       # article inside, 'theory' keeps 'the' prefix
    ("anthem", "anthem"),                            # 'an' only as a whole word
    ("U.S.A.", "usa"),
    ("café—Zürich", "café—zürich"),                   # non-ASCII punctuation is kept (string.punctuation only)
    ("", ""),
    ("\t\n", ""),
])
def test_normalize(raw, norm):
    assert normalize_answer(raw) == norm


def test_exact_and_f1_hand_computed():
    assert compute_exact("The Eiffel Tower", "eiffel tower.") == 1
    # gold tokens [denver, broncos], pred [broncos] -> P=1, R=0.5, F1=2/3
    assert compute_f1("Denver Broncos", "the Broncos") == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: gold [a1,a1,b] pred [a1] -> P=1, R=1/3
    assert compute_f1("x x y", "x") == pytest.approx(0.5)
    assert compute_f1("", "") == 1.0            # both empty: unanswerable predicted as unanswerable
    assert compute_f1("", "something") == 0.0
    assert compute_f1("Paris", "") == 0.0
    assert compute_f1("the", "a") == 1.0        # both normalise to empty
    assert compute_f1("Paris", "London") == 0.0


def test_item_scores_unanswerable_and_max_over_golds():
    assert squad2_item_scores("", []) == (1.0, 1.0)
    assert squad2_item_scores("Paris", []) == (0.0, 0.0)
    em, f1 = squad2_item_scores("the city of Paris", ["Paris", "city of Paris"])
    assert em == 1.0 and f1 == 1.0
    # a gold answer that normalises to empty is dropped, as the official script does
    assert squad2_item_scores("", ["the"]) == (1.0, 1.0)


def test_random_predictions_on_real_squad2_match_independent_scorer(data_dir):
    """Official keys on the real SQuAD 2.0 copy; HasAns checked against torchmetrics' SQuAD scorer."""
    tm = pytest.importorskip("torchmetrics.functional.text")
    items = load_dataset("squad2", data_dir=data_dir)
    assert len(items) == 6078
    rng = random.Random(7)
    preds = {}
    for it in items:
        words = it.context.split()
        r = rng.random()
        if r < 0.3:
            preds[it.id] = ""
        elif r < 0.6 and it.answers:
            preds[it.id] = rng.choice(it.answers)
        else:
            s = rng.randrange(len(words))
            preds[it.id] = " ".join(words[s:s + rng.randint(1, 4)])
    res, missing = evaluate_squad2(items, preds)
    assert not missing
    assert set(res) == {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                        "NoAns_exact", "NoAns_f1", "NoAns_total"}
    assert res["total"] == 6078 and res["NoAns_total"] == 3168 and res["HasAns_total"] == 2910
    # NoAns: exactly the predictions that normalise to "" score 1 (a lone "the" counts as abstaining)
    noans = [it for it in items if not it.answerable]
    assert res["NoAns_exact"] == pytest.approx(
        100 * np.mean([normalize_answer(preds[it.id]) == "" for it in noans]), abs=1e-9)
    assert res["NoAns_f1"] == res["NoAns_exact"]
    # HasAns via an independent implementation of the official rules
    has = [it for it in items if it.answerable and normalize_answer(preds[it.id]) != ""]
    ref = tm.squad([{"prediction_text": preds[it.id], "id": it.id} for it in has],
                   [{"answers": {"answer_start": [0] * len(it.answers), "text": list(it.answers)}, "id": it.id}
                    for it in has])
    empty_has = [it for it in items if it.answerable and normalize_answer(preds[it.id]) == ""]
    n_has = len(has) + len(empty_has)
    assert res["HasAns_exact"] == pytest.approx(float(ref["exact_match"]) * len(has) / n_has, abs=1e-4)
    assert res["HasAns_f1"] == pytest.approx(float(ref["f1"]) * len(has) / n_has, abs=1e-4)
    # the overall numbers are the item-weighted mix of the splits, to 1e-9
    mix = (res["HasAns_exact"] * 2910 + res["NoAns_exact"] * 3168) / 6078
    assert res["exact"] == pytest.approx(mix, abs=1e-9)


def test_score_cli_prints_official_keys(data_dir, tmp_path):
    from tests.conftest import run_cli, write_json

    items = load_dataset("squad2", data_dir=data_dir, n=50, seed=1)
    preds = {it.id: (it.answers[0] if it.answers else "") for it in items}
    gold = data_dir / "squad_v2_dev_cs224n" / "dev-v2.0.json.gz"
    p = run_cli("score", "squad2", str(write_json(tmp_path / "p.json", preds)), "--data-file", str(gold), "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    # 50 perfect predictions out of 6078 questions; the rest are missing and count as empty answers
    assert res["total"] == 6078
    n_noans_missing = sum(1 for it in load_dataset("squad2", data_dir=data_dir) if not it.answerable
                          and it.id not in preds)
    assert res["NoAns_exact"] == pytest.approx(100 * (n_noans_missing + sum(not it.answerable for it in items)) / 3168)
    assert "no prediction" in p.stderr
