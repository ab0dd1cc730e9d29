"""Self-agreement (seed 004): the estimator recovers a planted effect of the judge's own generation
log-probability on acceptance (correctness fixed) and finds none when log-probs are shuffled."""

from __future__ import annotations

import numpy as np

from judgegap.metrics.self_agreement import self_agreement


def _synthetic(effect: float, n: int = 400, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    correct = rng.integers(0, 2, n)
    logp = rng.normal(-8 + 2 * correct, 2.0)  # right answers are more probable (a confounder)
    z = (logp - logp.mean()) / logp.std()
    logit = -0.5 + 1.5 * correct + effect * z
    p = 1 / (1 + np.exp(-logit))
    p_correct = np.clip(p + rng.normal(0, 0.02, n), 0.001, 0.999)
    accept = rng.random(n) < p
    p_correct = np.where(accept, np.maximum(p_correct, 0.5), np.minimum(p_correct, 0.499))
    return [{"logp": float(a), "p_correct": float(b), "label": int(c), "words": 2} for a, b, c in
            zip(logp, p_correct, correct)]


def test_planted_effect_is_recovered_and_shuffled_logprobs_show_none():
    kw = {"n_resamples": 200, "seed": 1}
    planted = self_agreement(_synthetic(1.2), kw)
    assert planted["logit_coef"]["ci_low"] > 0.6 and planted["stratified_spearman"]["ci_low"] > 0.2
    assert abs(planted["logit_coef"]["value"] - 1.2) < 0.35  # the planted coefficient itself
    # shuffled log-probs: no effect on average over many shuffles (each alone is a 5% false-positive coin)
    from judgegap.metrics.self_agreement import logit_coef, stratified_spearman

    rows = _synthetic(1.2)
    lp = np.array([r["logp"] for r in rows])
    pc = np.array([r["p_correct"] for r in rows])
    y = np.array([r["label"] for r in rows])
    w = np.ones(len(rows)) * 2
    coefs, rhos = [], []
    for k in range(20):
        sh = np.random.default_rng(100 + k).permutation(lp)
        coefs.append(logit_coef(sh, (pc >= 0.5).astype(int), y, w))
        rhos.append(stratified_spearman(sh, pc, y))
    assert abs(np.mean(coefs)) < 0.08 and abs(np.mean(rhos)) < 0.03
    zero = self_agreement(_synthetic(0.0, seed=3), kw)
    assert zero["logit_coef"]["ci_low"] < 0 < zero["logit_coef"]["ci_high"]


def test_self_agreement_end_to_end_with_a_real_model(tmp_path, data_dir, tiny_model):
    """The tiny model judges, then scores every candidate as its own continuation; records and the
    report section come out, own and others separated."""
    import judgegap as jg
    from judgegap.store import Store

    res = jg.run({"datasets": [{"name": "squad2", "n": 3}], "data_dir": str(data_dir), "bootstrap_resamples": 100,
                  "output_dir": str(tmp_path / "o"),
                  "models": [{"name": "tiny", "model": str(tiny_model), "generation": {"max_new_tokens": 4}},
                             {"name": "s", "backend": "scripted", "model": "span"}],
                  "experiments": [{"name": "asymmetry", "params": {"text_verdict": False}},
                                  {"name": "self_agreement", "params": {"judges": ["tiny"]}}]})
    sa = res.summary["experiments"]["self_agreement"]["datasets"]["squad2"]["tiny"]
    assert sa["own"]["n"] == 3 and sa["others"]["n"] == 3 * 3  # the scripted model's answers + gold + wrong span
    st = Store.in_dir(tmp_path / "o")
    recs = st.records("self_agreement", "scored_candidate")
    st.close()
    assert all(r["logp"] < 0 for r in recs) and {r["author"] for r in recs} >= {"tiny", "s", "gold", "wrong_span"}
    assert 'id="self-agreement-table"' in (tmp_path / "o" / "report.html").read_text()


def test_self_agreement_needs_asymmetry_first(tmp_path, data_dir):
    import yaml

    from tests.conftest import cli_inproc

    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"datasets": [{"name": "squad2", "n": 2}], "data_dir": str(data_dir),
                                 "output_dir": str(tmp_path / "o"),
                                 "models": [{"name": "s", "backend": "scripted", "model": "span"}],
                                 "experiments": ["self_agreement", "asymmetry"]}))
    p = cli_inproc("run", str(f))
    assert p.returncode == 2 and "needs the asymmetry experiment earlier" in p.stderr
