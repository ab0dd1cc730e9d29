"""Judging against alternatives (seed 004): option sets, the pooled pick, the comparison with the
single-candidate verdict on the same items, a scripted judge with a known pick, a real tiny model,
and bad input."""

from __future__ import annotations

import random

import pytest
import yaml

from judgegap.experiments.alternatives import option_set
from judgegap.metrics.alternatives import compare, pooled_pick, reading
from tests.conftest import cli_inproc

KW = {"n_resamples": 200, "seed": 0}


def _j(author, cand, label):
    return {"author": author, "candidate": cand, "label": label}


def test_option_set_dedupes_keeps_own_and_gold_and_caps_k():
    rows = [_j("me", "Denver Broncos", 1), _j("other", "the Denver Broncos.", 1), _j("gold", "Denver Broncos", 1),
            _j("wrong_span", "Carolina Panthers", 0), _j("third", "Santa Clara", 0)]
    opts, own = option_set(rows, "me", k=3, include_gold=True, rng=random.Random(0))
    texts = [o["text"] for o in opts]
    # "the Denver Broncos." and the gold normalise to the judge's own answer: offered once, as its own
    assert sorted(texts) == ["Carolina Panthers", "Denver Broncos", "Santa Clara"]
    assert opts[own]["source"] == "me"
    opts2, _ = option_set(rows, "me", k=1, include_gold=True, rng=random.Random(0))
    assert len(opts2) == 2 and {o["source"] for o in opts2} == {"me", "third"}  # other models before the span
    rows_g = [_j("me", "Carolina", 0), _j("gold", "Denver Broncos", 1), _j("wrong_span", "Santa Clara", 0)]
    assert "gold" in {o["source"] for o in option_set(rows_g, "me", 1, True, random.Random(0))[0]}  # gold first
    assert "gold" not in {o["source"] for o in option_set(rows_g, "me", 3, False, random.Random(0))[0]}
    assert option_set([_j("me", "x", 0)], "me", 3, True, random.Random(0)) is None  # nothing to compare with
    assert option_set(rows, "nobody", 3, True, random.Random(0)) is None


def _rec(options, labels, probs, own, order=0):
    return {"options": options, "labels": labels, "probs": probs, "own_index": own, "order": order,
            "pick": max(range(len(probs)), key=lambda i: probs[i])}


def test_pooled_pick_averages_over_orders_by_option_not_letter():
    a = _rec(["x", "y"], [0, 1], [0.6, 0.3, 0.1], own=0)  # x at A, first-letter bias
    b = _rec(["y", "x"], [1, 0], [0.6, 0.3, 0.1], own=1, order=1)  # reversed: y at A
    p = pooled_pick([a, b])
    assert p["p_own"] == pytest.approx(0.45) and p["pick"] == "x"  # x: (0.6+0.3)/2 = y's; tie -> first max
    assert p["consistent"] == 0 and p["own_label"] == 0 and p["gold_offered"] == 1
    n = pooled_pick([_rec(["x", "y"], [0, 0], [0.2, 0.1, 0.7], own=0)])
    assert n["pick"] == "(none)" and n["pick_correct"] == 1 and n["pick_own"] == 0 and n["consistent"] is None


def test_compare_on_hand_computed_rows():
    # 4 own-wrong items: alone all accepted, among alternatives 1 of 4; 2 own-right: alone 2, among 1
    rows = ([{"own_label": 0, "pick_own": int(k == 0), "accept_single": 1, "p_single": 0.9, "p_own": 0.3,
              "pick_correct": 1, "consistent": 1, "n_options": 3, "gold_offered": 1} for k in range(4)]
            + [{"own_label": 1, "pick_own": int(k == 0), "accept_single": 1, "p_single": 0.8, "p_own": 0.6,
                "pick_correct": int(k == 0), "consistent": 0, "n_options": 3, "gold_offered": 0} for k in range(2)])
    c = compare(rows, **KW)
    assert c["n_wrong"] == 4 and c["n_right"] == 2
    assert c["single"]["accept_wrong"]["value"] == 1.0 and c["alternatives"]["accept_wrong"]["value"] == 0.25
    assert c["delta"]["accept_wrong"]["value"] == pytest.approx(-0.75)
    assert c["delta"]["accept_right"]["value"] == pytest.approx(-0.5)
    assert c["single"]["own_j"]["value"] == pytest.approx(0.0)
    assert c["alternatives"]["own_j"]["value"] == pytest.approx(0.5 - 0.25)
    assert c["pick_accuracy"]["value"] == pytest.approx(5 / 6)
    assert c["position_consistency"]["value"] == pytest.approx(4 / 6)
    assert reading(c) in ("holds", "inconclusive at this n")
    big = compare(rows * 10, **KW)  # the same effect at 60 items: the CI excludes 0
    assert reading(big) == "holds"
    flip = [dict(r, pick_own=r["accept_single"], accept_single=r["pick_own"]) for r in rows * 10]
    assert reading(compare(flip, **KW)) == "does not hold"


def _cfg(tmp_path, data_dir, models, alt_params=None, n=12):
    return {"datasets": [{"name": "squad2", "n": n}], "data_dir": str(data_dir), "bootstrap_resamples": 200,
            "output_dir": str(tmp_path / "o"), "models": models,
            "experiments": [{"name": "asymmetry", "params": {"text_verdict": False}},
                            {"name": "alternatives", "params": alt_params or {}}]}


def test_a_judge_that_always_picks_letter_a(tmp_path, data_dir):
    """Scripted judges put 0.99 on the first choice: " Yes" alone (accepts everything) and " A" among
    alternatives (picks whatever is shown first). So alone it accepts all its wrong answers, and among
    alternatives exactly those shown first -- both computable from the stored picks."""
    import judgegap as jg
    from judgegap.store import Store

    models = [{"name": "a", "backend": "scripted", "model": "span", "script": {"p_yes": 0.99}},
              {"name": "b", "backend": "scripted", "model": "abstain", "script": {"p_yes": 0.99}}]
    res = jg.run(_cfg(tmp_path, data_dir, models, {"orders": 1, "k": 3}))
    st = Store.in_dir(tmp_path / "o")
    picks = [r for r in st.records("alternatives", "pick") if r["judge"] == "a"]
    gens = {r["item_id"]: r for r in st.records("asymmetry", "generation") if r["model"] == "a"}
    st.close()
    assert picks and all(r["pick"] == 0 for r in picks)
    assert all(r["sources"][r["own_index"]] == "a" for r in picks)
    assert all(abs(sum(r["probs"]) - 1) < 1e-9 and len(r["lp"]) == len(r["options"]) + 1 for r in picks)
    c = res.summary["experiments"]["alternatives"]["datasets"]["squad2"]["a"]
    wrong = [r for r in picks if not gens[r["item_id"]]["correct"]]
    assert c["n_wrong"] == len(wrong) > 0
    assert c["single"]["accept_wrong"]["value"] == 1.0
    assert c["alternatives"]["accept_wrong"]["value"] == pytest.approx(
        sum(r["own_index"] == 0 for r in wrong) / len(wrong))
    assert 'id="alternatives-table"' in (tmp_path / "o" / "report.html").read_text()


def test_real_tiny_model_picks_among_alternatives_in_both_orders(tmp_path, data_dir, tiny_model):
    import judgegap as jg
    from judgegap.store import Store

    models = [{"name": "tiny", "model": str(tiny_model), "generation": {"max_new_tokens": 4}},
              {"name": "s", "backend": "scripted", "model": "span"}]
    res = jg.run(_cfg(tmp_path, data_dir, models, {"judges": ["tiny"]}, n=3))
    st = Store.in_dir(tmp_path / "o")
    picks = st.records("alternatives", "pick")
    st.close()
    assert len(picks) == 2 * 3 and {r["order"] for r in picks} == {0, 1}
    by = {}
    for r in picks:
        by.setdefault(r["item_id"], {})[r["order"]] = r
    for pair in by.values():  # the reversed order shows the same options backwards
        assert pair[1]["options"] == pair[0]["options"][::-1]
        assert all(x < 0 for x in pair[0]["lp"]) and abs(sum(pair[0]["probs"]) - 1) < 1e-9
    assert res.summary["experiments"]["alternatives"]["datasets"]["squad2"]["tiny"]["n"] == 3


@pytest.mark.parametrize("exps, message", [
    (["alternatives", "asymmetry"], "needs the asymmetry experiment earlier"),
    (["asymmetry", {"name": "alternatives", "params": {"k": 0}}], "params.k: Input should be greater than or equal to 1"),
    (["asymmetry", {"name": "alternatives", "params": {"template": "nope"}}], "unknown prompt template 'nope'"),
])
def test_bad_input_one_line(tmp_path, data_dir, exps, message):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"datasets": [{"name": "squad2", "n": 2}], "data_dir": str(data_dir),
                                 "output_dir": str(tmp_path / "o"),
                                 "models": [{"name": "s", "backend": "scripted", "model": "span"}],
                                 "experiments": exps}))
    p = cli_inproc("run", str(f))
    assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "o").exists()
