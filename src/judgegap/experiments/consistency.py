"""GE-consistency (AlignEval, seed 003): does judging ability rank models like generation ability?

No model calls: the experiment reads the records of ``asymmetry`` (generation F1 and
balanced-set judging J on QA) and ``pairwise`` (agreement with human labels) from the
same run, scores every model both ways, and reports Spearman and Kendall rank
correlations across models. CIs come from resampling *items* (QA items and pairs,
independently) and recomputing every model's scores and the correlations, so they say
how much the ranking depends on the particular items. With two models a rank
correlation can only be -1 or +1: the summary says so rather than hiding it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from judgegap.metrics.calibration import kendall, spearman

from judgegap.metrics.bootstrap import settings as bootstrap_settings
from judgegap.experiments import summaries
from judgegap.experiments.base import EXPERIMENTS, ExperimentBase, RunContext, parse_experiment_params
from judgegap.store import Store

NAME = "ge_consistency"


class ConsistencyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generation_score: str = Field(default="f1", pattern="^(f1|em|correct)$")
    pair_verdict: str = Field(default="verdict_averaged", pattern="^(verdict|verdict_averaged|text_verdict)$")


def _matrix(recs: list[dict[str, Any]], model_key: str, value) -> tuple[list[str], np.ndarray]:
    """models x items matrix of ``value(rec)``; items every model has."""
    by: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for r in recs:
        v = value(r)
        if v is not None:
            by[r[model_key]][(r["dataset"], r["item_id"])] = float(v)
    models = sorted(by)
    if not models:
        return [], np.zeros((0, 0))
    common = sorted(set.intersection(*(set(d) for d in by.values())))
    return models, np.array([[by[m][k] for k in common] for m in models])


def _corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan"), float("nan")
    return spearman(x, y), kendall(x, y)


def ge_consistency(gen: dict[str, np.ndarray], judge: dict[str, np.ndarray], n_resamples: int = 1000,
                   seed: int = 12345) -> dict[str, Any]:
    """Rank correlation between per-model generation and judging scores, with item-bootstrap CIs.

    ``gen[m]`` / ``judge[m]`` are per-item score arrays (same items for every model).
    """
    models = sorted(set(gen) & set(judge))
    if len(models) < 2:
        return {"n_models": len(models), "note": "needs at least two models with both scores"}
    G = np.array([gen[m] for m in models])
    J = np.array([judge[m] for m in models])
    g, j = G.mean(1), J.mean(1)
    rho, tau = _corr(g, j)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_resamples):
        gi = rng.integers(0, G.shape[1], G.shape[1])
        ji = rng.integers(0, J.shape[1], J.shape[1])
        boots.append(_corr(G[:, gi].mean(1), J[:, ji].mean(1)))
    b = np.array(boots)

    def est(v: float, col: int) -> dict[str, Any]:
        vals = b[:, col][~np.isnan(b[:, col])]
        lo, hi = (np.percentile(vals, [2.5, 97.5]) if len(vals) else (np.nan, np.nan))
        return {"value": v, "ci_low": float(lo), "ci_high": float(hi), "n": len(models)}

    out = {"n_models": len(models), "models": models,
           "generation": dict(zip(models, map(float, g))), "judging": dict(zip(models, map(float, j))),
           "n_generation_items": int(G.shape[1]), "n_judging_items": int(J.shape[1]),
           "spearman": est(rho, 0), "kendall": est(tau, 1),
           "rank_generation": dict(zip(models, map(int, stats.rankdata(-g, method="min")))),
           "rank_judging": dict(zip(models, map(int, stats.rankdata(-j, method="min"))))}
    ok = b[:, 0][~np.isnan(b[:, 0])]
    out["bootstrap_share_positive"] = float((ok > 0).mean()) if len(ok) else float("nan")
    if len(models) == 2:
        out["note"] = ("with two models a rank correlation is -1 or +1 (or undefined on ties); the CI only shows"
                       " how often resampled items flip the order")
    return out


@EXPERIMENTS.register(NAME)
class GEConsistency(ExperimentBase):
    name = NAME
    Summary = summaries.ConsistencySummary
    report_section = "judgegap.report.sections:ge_consistency"
    Params = ConsistencyParams
    dataset_kinds = ()

    @staticmethod
    def models_used(p: ConsistencyParams, model_names: list[str]) -> dict[str, list[str]]:
        return {}

    @staticmethod
    def requires(p: ConsistencyParams) -> dict[str, tuple[str, ...]]:
        return {"": ("asymmetry", "pairwise")}

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        parse_experiment_params(ConsistencyParams, NAME, params)  # no model calls: summarised from records

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        p = parse_experiment_params(ConsistencyParams, NAME, params)
        kw = bootstrap_settings(config)
        gm, G = _matrix(store.records("asymmetry", "generation"), "model", lambda r: r[p.generation_score])
        gen = dict(zip(gm, G))
        judging: dict[str, dict[str, np.ndarray]] = {}
        pairs = [r for r in store.records("pairwise", "pair") if r["mode"] == "model" and r["label"] != "tie"]
        jm, J = _matrix(pairs, "judge", lambda r: float(r[p.pair_verdict] == r["label"]))
        if jm:
            judging["human_pair_agreement"] = dict(zip(jm, J))
        bal: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for r in store.records("asymmetry", "judgment"):
            if r["author"] in ("gold", "wrong_span"):
                bal[(r["judge"], r["dataset"], r["item_id"], r["author"])] = r
        jrecs = []
        for (jn, ds, iid, kind), r in bal.items():
            if kind == "gold" and (jn, ds, iid, "wrong_span") in bal:
                w = bal[(jn, ds, iid, "wrong_span")]
                jv = float(r["p_correct"] >= 0.5) + float(w["p_correct"] < 0.5) - 1
                jrecs.append({"judge": jn, "dataset": ds, "item_id": iid, "j": jv})
        qm, Q = _matrix(jrecs, "judge", lambda r: r["j"])
        if qm:
            judging["qa_balanced_youden_j"] = dict(zip(qm, Q))
        out: dict[str, Any] = {"experiment": NAME, "generation_score": f"asymmetry generation {p.generation_score}",
                               "judging_scores": {}}
        for name, jd in judging.items():
            out["judging_scores"][name] = ge_consistency(gen, jd, kw["n_resamples"], kw["seed"])
        if not gen or not judging:
            out["note"] = "needs the asymmetry experiment and pairwise (or asymmetry judging) records in this run"
        return out
