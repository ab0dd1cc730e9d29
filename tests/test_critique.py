"""The critique experiment (seed 004): round bookkeeping and flip counting on scripted models with
known behaviour, the vote, bad input, and resume mid-round."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import yaml

from judgegap.metrics.critique import flip_counts, round_measures, vote
from judgegap.metrics.qa import score_item
from judgegap.metrics.squad import normalize_answer
from tests.conftest import call_cache_file, cli_inproc, run_cli, run_then_kill_9

KEEP = {"name": "keep", "backend": "scripted", "model": "constant", "script": {"answer": "unanswerable"}}
COPY = {"name": "copy", "backend": "scripted", "model": "copy"}


def _cfg(tmp_path, data_dir, params, models=(KEEP, COPY), n=16, **extra):
    return {"datasets": [{"name": "squad2", "n": n}], "data_dir": str(data_dir), "bootstrap_resamples": 200,
            "output_dir": str(tmp_path / "out"), "models": [dict(m) for m in models],
            "experiments": [{"name": "critique", "params": params}], **extra}


def _turns(store, proto, agent):
    out = {}
    for r in store.records("critique", "turn") + store.records("critique", "vote"):
        if r["protocol"] == proto and r["agent"] == agent:
            out.setdefault(r["round"], {})[r["item_id"]] = r
    return out


def test_keeper_and_copier_in_debate_self_revision_and_cross_critique(tmp_path, data_dir):
    """'keep' always answers "unanswerable" (right exactly on SQuAD 2.0's unanswerable items); 'copy'
    adopts the other agent's answer whenever it is shown one. So in a debate copy's answer at every
    round >= 1 is keep's, and its flips from round 0 follow from its own round-0 correctness and
    the items' answerability alone; keep never changes under any protocol."""
    import judgegap as jg
    from judgegap.data import load_dataset
    from judgegap.store import Store

    res = jg.run(_cfg(tmp_path, data_dir, {"protocols": ["self-revise", "cross-critique", "debate"], "rounds": 2}))
    store = Store.in_dir(res.output_dir)
    summ = res.summary["experiments"]["critique"]["datasets"]["squad2"]["protocols"]
    items = {it.id: it for it in load_dataset("squad2", data_dir=data_dir)}

    keep_right = {i: int(not items[i].answerable) for i in _turns(store, "debate", "keep")[0]}
    assert 0 < sum(keep_right.values()) < len(keep_right)  # the sample has both kinds of item
    for proto, group in (("self-revise", "keep"), ("cross-critique", "keep<-copy"), ("debate", "keep+copy")):
        t = summ[proto][group]["keep"]
        assert [r["round"] for r in t["rounds"]] == [0, 1, 2]
        for r in t["rounds"]:
            assert r["change_rate"]["value"] == 0 and r["flips"]["right_to_wrong"] == 0
            assert r["flips"]["wrong_to_right"] == 0
            assert r["accuracy"]["value"] == pytest.approx(np.mean(list(keep_right.values())))

    copy = _turns(store, "debate", "copy")
    assert sorted(copy) == [0, 1, 2] and all(len(v) == 16 for v in copy.values())
    for r in (1, 2):
        assert all(copy[r][i]["prediction"] == "" for i in copy[r])  # keep's answer, adopted
    c0 = {i: score_item("squad2", copy[0][i]["prediction"], items[i])[1] >= 0.5 for i in copy[0]}
    expect_w2r = sum(1 for i in c0 if not c0[i] and keep_right[i])
    expect_r2w = sum(1 for i in c0 if c0[i] and not keep_right[i])
    # a change is a different answer after SQuAD normalisation (a span "the" equals the empty answer)
    expect_changed = sum(1 for i in c0 if normalize_answer(copy[0][i]["prediction"]) != "")
    r1 = summ["debate"]["keep+copy"]["copy"]["rounds"][1]
    assert r1["flips"]["wrong_to_right"] == expect_w2r > 0
    assert r1["flips"]["right_to_wrong"] == expect_r2w
    assert r1["change_rate"]["value"] == pytest.approx(expect_changed / 16)
    assert summ["debate"]["keep+copy"]["copy"]["rounds"][2]["change_rate"]["value"] == 0  # nothing left to copy
    # accuracy change = wrong->right - right->wrong, exactly
    assert r1["delta_accuracy"]["value"] == pytest.approx((expect_w2r - expect_r2w) / 16)
    # once both agree, both votes are that answer
    for how in ("majority", "confidence"):
        v = summ["debate"]["keep+copy"][f"vote:{how}"]["rounds"]
        assert v[2]["accuracy"]["value"] == pytest.approx(np.mean(list(keep_right.values())))
    # reviews: cross-critique shows keep copy's review and spends its tokens; self-revise's review is keep's own
    cc = _turns(store, "cross-critique", "keep")[1]
    assert all(t["critic"] == "copy" and t["critique"] for t in cc.values())
    assert all(t["critic"] == "keep" for t in _turns(store, "self-revise", "keep")[1].values())
    assert summ["cross-critique"]["keep<-copy"]["keep"]["rounds"][1]["tokens_per_item"] > \
        summ["cross-critique"]["keep<-copy"]["keep"]["rounds"][0]["tokens_per_item"]
    # confidence is keep's own verdict on its answer: unchanged answer, unchanged prompt, same value
    k = _turns(store, "self-revise", "keep")
    assert all(k[2][i]["confidence"] == k[0][i]["confidence"] for i in k[0])
    readings = res.summary["experiments"]["critique"]["readings"]
    assert {r["claim"] for r in readings} >= {"self_revision_confidence", "cross_critique_accuracy"}
    html = (res.output_dir / "report.html").read_text()
    assert 'id="critique-readings"' in html and "keep+copy" in html


def test_same_model_debate_samples_distinct_copies_and_resolves_votes(tmp_path, data_dir):
    import judgegap as jg
    from judgegap.store import Store

    span = {"name": "span", "backend": "scripted", "model": "span"}
    res = jg.run(_cfg(tmp_path, data_dir, {"protocols": ["same-model-debate", "self-revise"], "rounds": 1,
                                           "copies": 3, "self_critique": False},
                      models=(span,), n=8))
    store = Store.in_dir(res.output_dir)
    r0 = [_turns(store, "same-model-debate", f"span#{k}")[0] for k in range(3)]
    ids = list(r0[0])
    assert any(len({r0[k][i]["prediction"] for k in range(3)}) > 1 for i in ids), "copies did not sample"
    votes = _turns(store, "same-model-debate", "vote:majority")
    for i in ids:  # the majority vote picks an answer at least as frequent as any other
        answers = [r0[k][i]["prediction"].lower() for k in range(3)]
        assert answers.count(votes[0][i]["prediction"].lower()) == max(answers.count(a) for a in answers)
    sm = [r for r in res.summary["experiments"]["critique"]["readings"] if r["claim"] == "same_model_debate"][0]
    assert sm["evidence"] and sm["evidence"][0]["tokens_ratio"] > 1  # three copies cost more than one author


def test_vote_and_round_measures():
    assert vote(["Paris", "paris.", "Lyon"], [0.2, 0.2, 0.9], weighted=False) == 0
    assert vote(["Paris", "paris.", "Lyon"], [0.2, 0.2, 0.9], weighted=True) == 2
    assert vote(["a", "b"], [0.5, 0.5], weighted=False) == 0  # full tie: the first agent
    assert vote(["a", "b"], [None, None], weighted=True) == 0
    c0, c1 = [1, 1, 0, 0, 1, 0], [1, 0, 1, 1, 1, 0]
    assert flip_counts(c0, c1) == {"right_to_right": 2, "right_to_wrong": 1, "wrong_to_right": 2,
                                   "wrong_to_wrong": 1}
    m = round_measures(c0, c1, [0, 1, 1, 1, 0, 0], [0.9, 0.8, 0.3, 0.6, 0.7, 0.2], n_resamples=100, seed=0)
    assert m["delta_accuracy"]["value"] == pytest.approx(m["wrong_to_right"]["value"] - m["right_to_wrong"]["value"])
    from sklearn.metrics import roc_auc_score

    assert m["change_rate"]["value"] == pytest.approx(0.5)
    assert m["confidence"]["auroc"]["value"] == pytest.approx(roc_auc_score(c1, [0.9, 0.8, 0.3, 0.6, 0.7, 0.2]))
    assert m["confidence"]["mean_when_wrong"]["value"] == pytest.approx(0.5)  # items 1 and 5: (0.8 + 0.2) / 2


@pytest.mark.parametrize("params, models, message", [
    ({"protocols": ["cross-critique"]}, (KEEP,), "protocol cross-critique needs two different models; only 1"),
    ({"protocols": ["debate"]}, (KEEP,), "protocol debate needs two or more different models; only 1"),
    ({"rounds": 0}, (KEEP, COPY), "experiments[0] (critique).params.rounds: Input should be greater than or equal to 1"),
    ({"protocols": ["round-robin"]}, (KEEP, COPY), "unknown critique protocol 'round-robin'"),
    ({}, ({"name": "srv", "backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9", "logprobs": False},),
     "needs log-probabilities of given choices, which model srv (backend openai) cannot provide"),
])
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, data_dir, params, models, message):
    cfgp = tmp_path / "c.yaml"
    cfgp.write_text(yaml.safe_dump(_cfg(tmp_path, data_dir, params, models=models)))
    p = cli_inproc("run", str(cfgp))
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "out").exists()


def _summary_tracks(out) -> list[dict]:
    summ = json.loads((out / "summary.json").read_text())["experiments"]["critique"]
    return [t for g in summ["datasets"]["squad2"]["protocols"].values() for ts in g.values() for t in ts.values()]


@pytest.mark.parametrize("by_item", [False, True])
def test_kill_9_mid_round_then_resume_repeats_no_call(tmp_path, data_dir, by_item):
    """Killed part-way, then resumed: no call is made twice, batched or item by item (the order on
    prefix-cache backends). Item by item, each item's turns are stored as soon as its rounds are done,
    so `judgegap report` on the killed run shows the finished items.
    Before: item by item, no turn was stored until every item's calls were made, so a run killed at 90%
    of a 55-minute critique run had no critique numbers at all."""
    script = {"latency_s": 0.02, "prefix_cache": by_item}
    slow = [dict(KEEP, script={"answer": "unanswerable", **script}), dict(COPY, script=dict(script))]
    cfgp = tmp_path / "c.yaml"
    cfgp.write_text(yaml.safe_dump(_cfg(tmp_path, data_dir, {"protocols": ["debate", "self-revise"], "rounds": 2},
                                        models=slow, n=12)))
    db = call_cache_file()
    run_then_kill_9(["run", str(cfgp)], min_calls=100 if by_item else 60)  # item by item: ~24 new calls an item
    with sqlite3.connect(db) as c:
        before = dict(c.execute("SELECT key, created_at FROM calls").fetchall())
    if by_item:
        p = cli_inproc("report", str(tmp_path / "out"))
        assert p.returncode == 0, p.stderr
        tracks = _summary_tracks(tmp_path / "out")
        assert len(tracks) == 2 + 2 + 2  # self-revise keep / copy, debate keep / copy and its two votes
        assert all(t["complete"] and 1 <= t["n_items"] < 12 for t in tracks), [t["n_items"] for t in tracks]
    p = run_cli("run", str(cfgp), "--resume")
    assert p.returncode == 0, p.stderr
    with sqlite3.connect(db) as c:
        after = dict(c.execute("SELECT key, created_at FROM calls").fetchall())
    assert len(after) > len(before) and all(after[k] == v for k, v in before.items()), "a call was made again"
    assert all(t["complete"] and t["n_items"] == 12 for t in _summary_tracks(tmp_path / "out"))


def test_item_major_order_makes_exactly_the_batched_requests(tmp_path, data_dir):
    """order: item (what llamacpp gets by default) runs each item's calls back to back. It must make exactly
    the requests the batched order makes and store the same records: same cache keys, same turns."""
    import judgegap as jg
    from judgegap.store import Store

    def run(order):
        cache = tmp_path / f"cache-{order}.sqlite"
        cfg = _cfg(tmp_path / order, data_dir, {"protocols": ["self-revise", "cross-critique", "debate"],
                                               "rounds": 2, "order": order}, n=6, call_cache=str(cache))
        res = jg.run(cfg)
        st = Store.in_dir(res.output_dir)
        recs = sorted((r["protocol"], r["agent"], r["round"], r["item_id"], r["prediction"], r["confidence"],
                       r["critique"]) for r in st.records("critique", "turn"))
        st.close()
        with sqlite3.connect(cache) as c:
            keys = {k for (k,) in c.execute("SELECT key FROM calls")}
        return recs, keys

    item_recs, item_keys = run("item")
    model_recs, model_keys = run("model")
    assert item_recs == model_recs and len(item_recs) == 6 * 3 * (2 + 2 + 2)  # items x rounds 0-2 x tracks
    assert item_keys == model_keys


def test_prefix_cache_backends_get_each_items_calls_of_every_protocol_and_round_back_to_back(tmp_path, data_dir):
    """On backends that keep the last prompt's KV state (llamacpp), an item's calls for every protocol
    and every round come back to back, so each model reads the item's passage once, not once per round
    and protocol. Same calls and numbers as the batched order.
    Before: the item-by-item pass ran round by round and protocol by protocol, so a model met each item
    again after every other item had passed (a ~1,300-token HotpotQA passage re-read 3 x 4 times)."""
    from tests.test_run_dir import _calls_in_order

    runs = {}
    for cached in (True, False):
        models = [{"name": n, "backend": "scripted", "model": b, "script": {"prefix_cache": cached}}
                  for n, b in (("a", "span"), ("b", "copy"))]
        cfg = _cfg(tmp_path / str(cached), data_dir, {"protocols": ["self-revise", "cross-critique", "debate",
                                                                    "same-model-debate"], "rounds": 2, "copies": 2},
                   models=models, n=4, call_cache=str(tmp_path / f"calls-{cached}.sqlite"))
        cfgp = tmp_path / f"c{cached}.yaml"
        cfgp.write_text(yaml.safe_dump(cfg))
        p = cli_inproc("run", str(cfgp))
        assert p.returncode == 0, p.stderr
        with sqlite3.connect(tmp_path / f"calls-{cached}.sqlite") as c:
            owner = [m for (m,) in c.execute("SELECT model FROM calls ORDER BY rowid")]
        calls = _calls_in_order(tmp_path / f"calls-{cached}.sqlite")
        summ = json.loads((tmp_path / str(cached) / "out" / "summary.json").read_text())["experiments"]
        runs[cached] = ({m: [q for (_, q, _), mm in zip(calls, owner) if mm == m] for m in ("a", "b")}, summ)
    (item_major, s_item), (batched, s_batched) = runs[True], runs[False]
    assert s_item == s_batched

    def passages_read(questions: list[str]) -> int:
        """How often the model switched to another item: each switch re-reads a passage."""
        return len([q for k, q in enumerate(questions) if k == 0 or q != questions[k - 1]])

    for m in ("a", "b"):
        assert sorted(item_major[m]) == sorted(batched[m]) and len(item_major[m]) > 4 * 10
        assert passages_read(item_major[m]) == len(set(item_major[m])) == 4, (m, item_major[m])
        assert passages_read(batched[m]) > 4 * 3  # batched: every phase of every round walks all items


def test_seed004_claims_read_from_the_other_experiments_summaries():
    from judgegap.experiments.critique_summary import seed004_claims

    def est(v, lo, hi):
        return {"value": v, "ci_low": lo, "ci_high": hi, "n": 50}

    summ = {"experiments": {
        "asymmetry": {"datasets": {"squad2": {"models": {"a": {"self_preference": {"difference": est(0.2, 0.05, 0.3)}},
                                                         "b": {"self_preference": None}}}}},
        "self_agreement": {"datasets": {"squad2": {"a": {"own": {"logit_coef": est(0.4, -0.1, 0.9)}, "others": {}}}}},
        "alternatives": {"readings": [{"dataset": "squad2", "judge": "a", "estimate": est(-0.3, -0.5, -0.1)},
                                      {"dataset": "squad2", "judge": "b", "estimate": est(0.2, 0.1, 0.3)}]}}}
    got = {(r["claim"], r["judge"]): r["verdict"] for r in seed004_claims(summ)}
    assert got == {("rubber_stamp", "a"): "holds", ("feels_correct", "a"): "inconclusive at this n",
                   ("alternatives", "a"): "holds", ("alternatives", "b"): "does not hold"}
    assert seed004_claims({"experiments": {}}) == []


def test_the_documented_protocol_plugin_runs(tmp_path, data_dir):
    """docs/extending.md's critique-protocol example, taken from the document itself, registers and runs."""
    import re

    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "extending.md").read_text()
    code = re.search(r"## A critique protocol.*?```python\n(.*?)```", doc, re.S).group(1)
    plugin = tmp_path / "fixed_critic.py"
    plugin.write_text(code)
    cfgp = tmp_path / "c.yaml"
    cfgp.write_text(yaml.safe_dump(_cfg(tmp_path, data_dir, {"protocols": ["fixed-critic"], "critic": "copy",
                                                             "rounds": 1}, n=4)))
    p = cli_inproc("run", str(cfgp), "--include", str(plugin))
    assert p.returncode == 0, p.stderr
    summ = json.loads((tmp_path / "out" / "summary.json").read_text())["experiments"]["critique"]
    assert list(summ["datasets"]["squad2"]["protocols"]["fixed-critic"]) == ["keep<-copy"]
