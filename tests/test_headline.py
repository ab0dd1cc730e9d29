"""The headline's answer to 'can I trust its judgement of its own answers?' and the config diff,
on hand-made inputs."""

from __future__ import annotations

from judgegap.experiments.asymmetry import trust_verdict
from judgegap.report.headline import headline_rows
from judgegap.store.rundir import config_diff, config_hash


def _sj(a, lo, hi, war):
    return {"auroc": {"value": a, "ci_low": lo, "ci_high": hi, "n": 40},
            "wrong_accept_rate": {"value": war, "ci_low": war, "ci_high": war, "n": 20}}


def test_trust_answers():
    assert trust_verdict(_sj(0.9, 0.82, 0.97, 0.1), 20, 20)["answer"] == "yes"
    assert trust_verdict(_sj(0.9, 0.82, 0.97, 0.6), 20, 20)["answer"] == "partly"
    assert trust_verdict(_sj(0.55, 0.40, 0.70, 0.5), 20, 20)["answer"] == "no"
    worse = trust_verdict(_sj(0.30, 0.15, 0.45, 0.9), 20, 20)
    assert worse["answer"] == "no" and "worse than chance" in worse["why"]
    allwrong = trust_verdict({"auroc": {"value": None, "ci_low": None, "ci_high": None, "n": 10},
                              "wrong_accept_rate": {"value": 0.7, "ci_low": 0.4, "ci_high": 0.9, "n": 10}}, 10, 0)
    assert allwrong["answer"] == "cannot tell" and "all 10 of its answers are wrong" in allwrong["why"]
    assert "70%" in allwrong["why"]


def test_headline_picks_the_highest_target_the_held_out_folds_reach():
    summary = {"experiments": {
        "asymmetry": {"datasets": {"squad2": {"models": {"m": {
            "self_judge": {"balanced_accuracy": {"value": 0.75, "ci_low": 0.6, "ci_high": 0.9, "n": 40}},
            "trust": {"answer": "partly"}, "generation": {"accuracy": {"value": 0.5}}}}}}},
        "selfscore": {"datasets": {"squad2": {"m": {"routing": {"targets": {
            "0.5": {"threshold": 0.1, "heldout_accepted_accuracy": 0.62, "heldout_escalation_rate": 0.1, "n": 40},
            "0.7": {"threshold": 0.4, "heldout_accepted_accuracy": 0.71, "heldout_escalation_rate": 0.5, "n": 40},
            "0.9": {"threshold": 0.8, "heldout_accepted_accuracy": 0.80, "heldout_escalation_rate": 0.9, "n": 40},
        }}}}}}}}
    row = headline_rows(summary)[0]
    assert row["routing"]["target_accuracy"] == 0.7 and row["routing"]["threshold_confidence"] == 0.4
    assert abs(row["j_own"]["value"] - 0.5) < 1e-12 and abs(row["j_own"]["ci_low"] - 0.2) < 1e-12


def test_config_diff_names_fields_and_ignores_where_results_go():
    old = {"output_dir": "a", "call_cache": None, "seed": 0,
           "datasets": [{"name": "squad2", "n": 20, "seed": 0}], "models": [{"name": "m", "batch_size": "auto"}]}
    new = {"output_dir": "b", "call_cache": "/x.sqlite", "seed": 0,
           "datasets": [{"name": "squad2", "n": 5, "seed": 1}], "models": [{"name": "m", "batch_size": 8}]}
    assert config_diff(old, new) == ['datasets[0].n: 20 -> 5', 'datasets[0].seed: 0 -> 1',
                                     'models[0].batch_size: "auto" -> 8']
    moved = {**old, "output_dir": "elsewhere", "call_cache": "/y.sqlite"}
    assert config_diff(old, moved) == [] and config_hash(old) == config_hash(moved)
