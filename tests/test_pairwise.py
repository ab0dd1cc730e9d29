"""Pairwise judging: loaders (official schemas + real files), agreement measures, swap logic,
saved verdicts, GE-consistency, and a run through the CLI on a tiny model."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import cohen_kappa_score, f1_score

from judgegap.backends.base import BACKENDS, Backend, Capabilities, Completion
from judgegap.config import parse_config
from judgegap.data import DATASETS
from judgegap.data.pairs import majority, parse_autoj, parse_judgebench, parse_llmbar, parse_pandalm
from judgegap.data.verdicts import normalise_verdict
from judgegap.errors import DataError
from judgegap.experiments.consistency import ge_consistency
from judgegap.experiments.pairwise import choice_probs, parse_pair_text
from judgegap.experiments.runner import run_config
from judgegap.metrics.agreement import (_codes, agreement_report, annotator_report, cohen_kappa, combine_orders,
                                        macro_f1, position_report)

from conftest import cli_inproc, run_cli, write_json

LABELS = ["A", "B", "tie"]


@pytest.mark.parametrize("seed", range(5))
def test_kappa_and_macro_f1_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    a = rng.choice(LABELS, size=60, p=[0.45, 0.4, 0.15]).tolist()
    b = [x if rng.random() < 0.6 else rng.choice(LABELS) for x in a]
    ca, cb = _codes(a), _codes(b)
    assert cohen_kappa(ca, cb) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert macro_f1(ca, cb) == pytest.approx(f1_score(a, b, average="macro"), abs=1e-12)


def test_agreement_on_hand_labels():
    ref = ["A", "A", "B", "B", "tie", "A"]
    pred = ["A", "B", "B", "tie", "tie", None]
    rep = agreement_report(ref, pred, n_resamples=200)
    assert rep["accuracy_with_ties"].value == pytest.approx(3 / 6)  # A, B, tie right; None is never right
    assert rep["accuracy_without_ties"].value == pytest.approx(2 / 5)  # ref ties dropped, judge tie is wrong
    assert rep["n_unparsed"] == 1 and rep["n_reference_ties"] == 1
    assert rep["kappa"].value == pytest.approx(cohen_kappa_score(ref, ["A", "B", "B", "tie", "tie", "none"]))


def test_unparseable_verdict_never_earns_credit_on_a_tie():
    """Before: None was read as 'tie' and scored correct wherever the humans said tie."""
    rep = agreement_report(["tie", "tie", "A"], [None, None, "A"], n_resamples=100)
    assert rep["accuracy_with_ties"].value == pytest.approx(1 / 3)
    assert rep["judge_tie_rate"].value == 0.0


def test_always_first_judge_has_no_position_consistency():
    # a judge that always picks the first-shown response: "A" in the original order and "A" in the
    # swapped order (which is the original B)
    first, swapped = ["A"] * 20, ["A"] * 20
    rep = position_report(first, swapped, n_resamples=200)
    assert rep["position_consistency"].value == 0.0
    assert rep["first_position_rate"].value == 1.0
    assert all(combine_orders(f, s) == "inconsistent" for f, s in zip(first, swapped))
    assert combine_orders("A", "B") == "A" and combine_orders("tie", "tie") == "tie"
    assert combine_orders(None, "A") is None


def test_human_ceiling_on_hand_votes():
    votes = [["A", "A", "A"], ["A", "A", "B"], ["B", "B", "B"], ["tie", "A", "tie"], ["B", "A", "B"]] * 4
    rep = annotator_report(votes, pred=["A", "A", "B", "tie", "B"] * 4, n_resamples=200)
    v = np.array(votes)
    assert rep["pairwise_kappa"]["1-2"].value == pytest.approx(cohen_kappa_score(v[:, 0], v[:, 1]))
    assert rep["pairwise_kappa"]["2-3"].value == pytest.approx(cohen_kappa_score(v[:, 1], v[:, 2]))
    # annotator 1 (A,A,B,tie,B) vs the majority of 2 and 3 (a split counts as tie: A,tie,B,tie,tie)
    assert rep["leave_one_out_accuracy"]["1"].value == pytest.approx(3 / 5)
    assert rep["judge_kappa_per_annotator"]["1"].value == pytest.approx(1.0)
    assert majority(["A", "B", "tie"]) == "tie" and majority(["A", "B", "B"]) == "B"


def test_human_ceiling_undefined_kappa_is_nan_without_numpy_warning():
    # every annotator gives the same label on every item: kappa is undefined for every pair, which
    # the report gives as NaN -- without numpy's "Mean of empty slice" RuntimeWarning in the output
    votes = [["A", "A", "A"]] * 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = annotator_report(votes, n_resamples=50)
    assert np.isnan(rep["mean_pairwise_kappa"].value)
    assert all(np.isnan(e.value) for e in rep["pairwise_kappa"].values())


@pytest.mark.parametrize("text, verdict", [
    ("A", "A"), (" B.", "B"), ("Response A is better", "A"), ("Tie", "tie"), ("[[B]]", "B"),
    ("Answer: A", None), ("1. Communication", None), ("", None), ("Apple", None), ("<b>B</b>", None),
])
def test_parse_pair_text(text, verdict):
    assert parse_pair_text(text) == verdict


def test_normalise_saved_verdicts():
    assert [normalise_verdict(x) for x in ("1", 2, "0", "Tie", "A>B", "garbage", True, None, "B")] == \
        ["A", "B", "tie", "tie", "A", None, None, None, "B"]
    assert choice_probs([math.log(0.2), math.log(0.6)]) == pytest.approx([0.25, 0.75])


# -- loaders: small files in each official schema, then the real files ---------------------------------

def test_loaders_on_official_schemas(tmp_path):
    llm = write_json(tmp_path / "LLMBar" / "Natural" / "dataset.json",
                     [{"input": "Say hi", "output_1": "hi", "output_2": "bye", "label": 1},
                      {"input": "Count", "output_1": "1 2", "output_2": "1 2 3", "label": 2}])
    items = parse_llmbar(llm, "llmbar-natural")
    assert [i.label for i in items] == ["A", "B"] and items[0].metadata["subset"] == "LLMBar/Natural"
    aj = tmp_path / "testdata_pairwise.jsonl"
    aj.write_text("\n".join(json.dumps({"scenario": "s", "prompt": "p", "response 1": " r1", "response 2": "r2",
                                        "label": lab}) for lab in (0, 1, 2)))
    assert [i.label for i in parse_autoj(aj)] == ["A", "B", "tie"]
    pl = write_json(tmp_path / "testset-v1.json", [
        {"idx": 7, "motivation_app": "m", "cmp_key": "llama-7b_opt-7b", "instruction": "i", "input": "",
         "response1": True, "response2": "x", "annotator1": 1, "annotator2": 0, "annotator3": 1}])
    it = parse_pandalm(pl)[0]
    assert (it.id, it.label, it.votes, it.models, it.response_a) == ("7", "A", ("A", "tie", "A"),
                                                                      ("llama-7b", "opt-7b"), "True")
    jb = tmp_path / "jb.jsonl"
    jb.write_text(json.dumps({"pair_id": "p1", "original_id": "o", "source": "mmlu-pro-law", "question": "q",
                              "response_model": "gpt-4o", "response_A": "a", "response_B": "b", "label": "B>A"}))
    assert parse_judgebench(jb)[0].label == "B"
    bad = write_json(tmp_path / "bad.json", [{"input": "x", "output_1": "a", "output_2": "b", "label": 3}])
    with pytest.raises(DataError, match="label must be 1 or 2"):
        parse_llmbar(bad)


@pytest.mark.parametrize("name, n, labels", [
    ("pandalm", 999, {"A": 422, "B": 472, "tie": 105}),
    ("autoj-eval-p", 1392, {"A": 520, "B": 499, "tie": 373}),
    ("llmbar-natural", 100, {"A": 42, "B": 58}),
    ("llmbar-adversarial", 319, None),
    ("llmbar-mtbench", 200, {"A": 101, "B": 99}),
    ("judgebench", 350, {"A": 193, "B": 157}),
])
def test_real_pair_files(data_dir, name, n, labels):
    items = DATASETS.get(name).load(data_dir)
    assert len(items) == n and len({i.id for i in items}) == n
    if labels:
        assert {k: sum(i.label == k for i in items) for k in labels} == labels
    assert all(isinstance(i.response_a, str) and isinstance(i.response_b, str) and i.instruction for i in items)
    # 54 real PandaLM responses are empty (the 7B model said nothing); they stay in the set
    assert sum(not (i.response_a and i.response_b) for i in items) <= 0.06 * n


def test_agreement_cli_reproduces_published_pandalm_numbers(data_dir):
    """PandaLM (Wang et al. 2023, Table 2) reports accuracy 71.07 for GPT-3.5 and 66.77 for PandaLM-7B."""
    folder = data_dir / "pandalm_testset"
    r = run_cli("agreement", str(folder / "gpt-3.5-turbo-testset-v1.json.gz"), "--dataset", "pandalm",
                "--data-dir", str(data_dir), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    # the paper's number counts its 25 unparseable verdicts as ties (13 of them match a human tie)
    assert res["published_convention"]["accuracy_with_ties"]["value"] == pytest.approx(0.7107, abs=5e-4)
    assert res["n_unparseable"] == 25 and res["n_pairs"] == 999
    # default: the 974 judged pairs, with coverage; strict: no verdict = wrong
    assert res["coverage"] == {"n_pairs": 999, "n_judged": 974, "rate": pytest.approx(974 / 999)}
    assert res["accuracy_with_ties"]["value"] == pytest.approx(697 / 974, abs=5e-4)
    assert res["accuracy_with_ties"]["n"] == 974
    assert res["all_pairs"]["accuracy_with_ties"]["value"] == pytest.approx(697 / 999, abs=5e-4)
    assert res["kappa"]["ci_low"] < res["kappa"]["value"] < res["kappa"]["ci_high"]
    assert res["annotators"]["mean_pairwise_kappa"]["value"] > 0.8
    r = run_cli("agreement", str(folder / "pandalm-7b-testset-v1.json.gz"), "--dataset", "pandalm",
                "--data-dir", str(data_dir), "--json")
    assert json.loads(r.stdout)["accuracy_with_ties"]["value"] == pytest.approx(0.6677, abs=5e-4)


def test_agreement_mostly_missing_verdicts_is_scored_on_the_judged_pairs(data_dir, tmp_path):
    """Before: 949 of 999 missing were counted as ties with n = 999 (a 95% 'tie rate')."""
    from judgegap.data import DATASETS

    items = DATASETS.get("pandalm").load(data_dir=data_dir)
    f = tmp_path / "few.jsonl"
    f.write_text("".join(json.dumps({"id": it.id, "verdict": "A"}) + "\n" for it in items[:50]))
    r = run_cli("agreement", str(f), "--dataset", "pandalm", "--data-dir", str(data_dir), "--json")
    res = json.loads(r.stdout)
    assert res["coverage"]["n_judged"] == 50 and res["n_missing"] == 949
    assert res["accuracy_with_ties"]["n"] == 50 and res["judge_tie_rate"]["value"] == 0.0
    assert res["all_pairs"]["judge_tie_rate"]["value"] == 0.0


def test_agreement_cli_bad_inputs(data_dir, tmp_path):
    bad = tmp_path / "v.jsonl"
    bad.write_text('{"id": "0", "verdict": "A"}\n{"oops": 1}\n')
    r = run_cli("agreement", str(bad), "--dataset", "pandalm", "--data-dir", str(data_dir))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "record 1" in r.stderr
    nomatch = tmp_path / "n.jsonl"
    nomatch.write_text('{"id": "zzz", "verdict": "A"}\n')
    r = run_cli("agreement", str(nomatch), "--dataset", "pandalm", "--data-dir", str(data_dir))
    assert r.returncode != 0 and "no verdict matches" in r.stderr
    r = run_cli("agreement", str(nomatch), "--dataset", "squad2", "--data-dir", str(data_dir))
    assert r.returncode != 0 and "not a pairwise set" in r.stderr


def test_ge_consistency_known_rankings():
    rng = np.random.default_rng(0)
    gen = {m: rng.random(50) * 0.1 + q for m, q in zip("abcd", (0.1, 0.3, 0.5, 0.7))}
    same = {m: rng.random(80) * 0.1 + q for m, q in zip("abcd", (0.2, 0.4, 0.6, 0.8))}
    rev = {m: rng.random(80) * 0.1 + q for m, q in zip("abcd", (0.8, 0.6, 0.4, 0.2))}
    r = ge_consistency(gen, same, n_resamples=200)
    assert r["spearman"]["value"] == pytest.approx(1.0) and r["kendall"]["value"] == pytest.approx(1.0)
    assert ge_consistency(gen, rev, n_resamples=200)["spearman"]["value"] == pytest.approx(-1.0)
    two = ge_consistency({"a": gen["a"], "b": gen["b"]}, {"a": same["a"], "b": same["b"]}, n_resamples=100)
    assert "two models" in two["note"]
    assert ge_consistency({"a": gen["a"]}, {"a": same["a"]})["n_models"] == 1


# -- the experiment end to end ------------------------------------------------------------------------

@BACKENDS.register("always-first-test")
class AlwaysFirst(Backend):
    """A judge with pure position bias: the first-shown response always gets P = 0.9."""

    backend_name = "always-first-test"
    capabilities = Capabilities()

    def __init__(self, **cfg) -> None:
        self.cfg = cfg

    def fingerprint(self):
        return {"name": "always-first"}

    def generate(self, requests):
        return [Completion(text="A") for _ in requests]

    def score_choices(self, prompts, choices):
        return [[math.log(0.9)] + [math.log(0.1 / (len(choices) - 1))] * (len(choices) - 1) for _ in prompts]

    def top_logprobs(self, prompts, k):
        return [[(" A", math.log(0.9))] for _ in prompts]


def test_pairwise_experiment_with_position_biased_judge(data_dir, tmp_path):
    cfg = parse_config({"output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
                        "datasets": [{"name": "pandalm", "n": 30}, {"name": "llmbar-natural", "n": 20}],
                        "models": [{"name": "first", "backend": "always-first-test", "model": "x"}],
                        "experiments": [{"name": "pairwise", "params": {"saved_verdicts": [
                            {"name": "gpt35", "dataset": "pandalm",
                             "file": str(data_dir / "pandalm_testset" / "gpt-3.5-turbo-testset-v1.json.gz")}]}}]})
    summary = run_config(cfg)
    res = summary["experiments"]["pairwise"]["datasets"]
    for ds in ("pandalm", "llmbar-natural"):
        js = res[ds]["first"]
        assert js["position"]["position_consistency"]["value"] == 0.0
        assert js["position"]["first_position_rate"]["value"] == 1.0
        assert js["order_consistent"]["judge_tie_rate"]["value"] == 1.0  # every pair 'inconsistent'
        assert js["text"]["n_unparsed_replies"] == 0
    assert res["pandalm"]["gpt35"]["mode"] == "saved" and res["pandalm"]["gpt35"]["n_pairs"] == 30
    assert "annotators" in res["pandalm"]["first"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Pairwise judging against human labels" in html and "Human–human ceiling" in html


def test_judge_pairs_cli_on_tiny_model(data_dir, tiny_model, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
output_dir: {tmp_path / 'out'}
data_dir: {data_dir}
datasets: [{{name: squad2, n: 4}}, {{name: llmbar-natural, n: 3}}]
models: [{{name: t1, model: {tiny_model}}}, {{name: t2, model: {tiny_model}, chat_template: never}}]
experiments:
  - name: asymmetry
    params: {{text_verdict: false}}
  - name: pairwise
    params: {{self_pairs: true}}
  - ge_consistency
""")
    r = run_cli("judge-pairs", str(cfg))
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "out" / "summary.json").read_text())["experiments"]
    assert set(s["pairwise"]["datasets"]["llmbar-natural"]) == {"t1", "t2"}
    ge = s["ge_consistency"]["judging_scores"]
    assert ge["human_pair_agreement"]["n_models"] == 2 and ge["qa_balanced_youden_j"]["n_models"] == 2
    r = run_cli("judge-pairs", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_pair_calibration_against_human_labels():
    from judgegap.experiments.pairwise import summarize_pairs

    rng = np.random.default_rng(0)
    recs = []
    for k in range(60):
        lab = "A" if k % 2 else "B"
        p = 0.8 if lab == "A" else 0.2  # a well-separated judge, the same in both orders
        recs.append({"dataset": "d", "judge": "j", "mode": "model", "item_id": str(k), "label": lab, "votes": [],
                     "len_a": 1, "len_b": 2, "p_first": [p, 1 - p, 0.0], "p_swapped": [1 - p, p, 0.0],
                     "verdict_first": "A" if p > .5 else "B", "verdict_swapped": "B" if p > .5 else "A",
                     "verdict": lab, "verdict_averaged": lab, "text_first": None})
    res = summarize_pairs(recs, [], {"n_resamples": 100, "seed": rng.integers(100)})["datasets"]["d"]["j"]
    cal = res["calibration_vs_human"]
    assert cal["auroc"]["value"] == 1.0 and cal["ece_equal_width"]["value"] == pytest.approx(0.2)
    assert res["order_consistent"]["accuracy_with_ties"]["value"] == 1.0


def _saved_cfg(tmp_path: Path, data_dir: Path, saved: list[dict], datasets: list[dict] | None = None) -> Path:
    cfg = {"output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "datasets": datasets or [{"name": "pandalm", "n": 6}, {"name": "llmbar-natural", "n": 4}],
           "models": [{"name": "first", "backend": "always-first-test", "model": "x"}],
           "experiments": [{"name": "pairwise", "params": {"text_verdict": False, "saved_verdicts": saved}}]}
    p = tmp_path / "pairs.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize("case", ["dataset not configured", "dataset not of pairs", "missing file", "unreadable file"])
def test_saved_verdicts_are_checked_at_config_load_before_any_judging(data_dir, tmp_path, case):
    """A saved-verdicts entry that cannot be scored used to fail only after every pair had been judged
    (13 min of Qwen on LLMBar); now it is one line at load naming the field, and nothing is written."""
    gpt = data_dir / "pandalm_testset" / "gpt-3.5-turbo-testset-v1.json.gz"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    entry, where = {
        "dataset not configured": ({"name": "g", "dataset": "pandalm", "file": str(gpt)}, "saved_verdicts[0].dataset"),
        "dataset not of pairs": ({"name": "g", "dataset": "squad2", "file": str(gpt)}, "saved_verdicts[0].dataset"),
        "missing file": ({"name": "g", "dataset": "pandalm", "file": str(tmp_path / "nope.json")},
                         "saved_verdicts[0].file"),
        "unreadable file": ({"name": "g", "dataset": "pandalm", "file": str(bad)}, "saved_verdicts[0].file"),
    }[case]
    datasets = {"dataset not configured": [{"name": "llmbar-natural", "n": 4}],
                "dataset not of pairs": [{"name": "pandalm", "n": 4}, {"name": "squad2", "n": 2}]}.get(case)
    p = cli_inproc("judge-pairs", str(_saved_cfg(tmp_path, data_dir, [entry], datasets)))
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and where in lines[0], p.stderr
    assert not (tmp_path / "out").exists()


def test_dataset_option_on_a_pairwise_config_leaves_out_that_datasets_saved_verdicts(data_dir, tmp_path):
    """``--dataset llmbar-natural`` on a config whose saved verdicts are PandaLM's runs LLMBar alone (the
    saved verdicts belong to the left-out set); ``--dataset pandalm`` keeps them."""
    gpt = data_dir / "pandalm_testset" / "gpt-3.5-turbo-testset-v1.json.gz"
    cfg = _saved_cfg(tmp_path, data_dir, [{"name": "gpt35", "dataset": "pandalm", "file": str(gpt)}])
    p = cli_inproc("judge-pairs", str(cfg), "--dataset", "llmbar-natural", "-o", str(tmp_path / "l"))
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "l" / "summary.json").read_text())["experiments"]["pairwise"]["datasets"]
    assert set(res) == {"llmbar-natural"} and set(res["llmbar-natural"]) == {"first"}
    p = cli_inproc("judge-pairs", str(cfg), "--dataset", "pandalm", "--n", "5", "-o", str(tmp_path / "p"))
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "p" / "summary.json").read_text())["experiments"]["pairwise"]["datasets"]
    assert set(res) == {"pandalm"} and res["pandalm"]["gpt35"]["n_pairs"] == 5


def test_saved_verdicts_matching_no_pair_fail_before_any_pair_is_judged(data_dir, tmp_path):
    """Which ids a saved-verdicts file covers is known only once the set is loaded; it is checked then,
    before the judges' calls, not after them."""
    nomatch = tmp_path / "nomatch.jsonl"
    nomatch.write_text('{"id": "no-such-pair", "verdict": "A"}\n')
    cfg = _saved_cfg(tmp_path, data_dir, [{"name": "g", "dataset": "pandalm", "file": str(nomatch)}])
    p = cli_inproc("judge-pairs", str(cfg))
    assert p.returncode != 0 and "no verdict matches an id of dataset pandalm" in p.stderr.strip().splitlines()[-1]
    from judgegap.store import Store

    st = Store.in_dir(tmp_path / "out")
    judged = [r for r in st.records("pairwise", "pair") if r.get("mode") == "model"]
    st.close()
    assert judged == []
