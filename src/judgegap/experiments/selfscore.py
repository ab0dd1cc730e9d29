"""Self-score elicitation and calibration (seed 002: "self-evaluation is already there").

Answer channel and assessment channel are separate: the model first answers (the
asymmetry generate prompt, so a run with both experiments reuses the cached answers),
then a separate assessment prompt asks for a 1-10 score of that answer. The score is
read three ways, all recorded: (a) the expected score under the score tokens'
distribution (one ``score_choices`` call; multi-token " 10" handled as documented in
``metrics.scores``), (b) the argmax score, (c) the parsed text of a generated reply.
Every other configured model scores the same answer with the same prompt, as an
external judge. References: gold correctness (official metric) and each external judge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from judgegap.backends.base import GenRequest
from judgegap.errors import ConfigError
from judgegap.metrics.bootstrap import settings as bootstrap_settings
from judgegap.experiments import summaries
from judgegap.experiments.base import (EXPERIMENTS, ExperimentBase, RunContext, answer_requests, item_order_wanted,
                                       model_answers, other_models_answers, parse_experiment_params,
                                       with_progress)
from judgegap.experiments.candidates import clean_answer, display_answer
from judgegap.metrics.agreement import cohen_kappa
from judgegap.metrics.bootstrap import bootstrap_indices, mean_ci, paired_diff_ci
from judgegap.metrics.calibration import calibration_report, ece, est_dict
from judgegap.metrics.qa import score_item
from judgegap.metrics.scores import (SCORE_CHOICES, argmax_score, expected_score, parse_score, score_distribution,
                                     to_confidence, top_k_scores)
from judgegap.prompts import PROMPTS
from judgegap.routing.curves import aurc, cost_curve, cross_validated_threshold, risk_coverage
from judgegap.store import Store

NAME = "selfscore"
POOLED = "all datasets"


class SelfScoreParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    f1_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    external_judges: Literal["all", "none"] | list[str] = "all"
    text_score: bool = True
    text_score_models: list[str] | None = Field(default=None, description="text reading for these models only")
    text_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    generate_template: str = "qa_generate"
    score_template: str = "self_score"
    n_bins: int = Field(default=10, ge=2, le=50)
    judge_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="judge confidence >= this = 'correct'")
    target_accuracies: list[float] = Field(default_factory=lambda: [0.5, 0.7, 0.9])
    escalation_cost: float = Field(default=0.3, ge=0.0)
    folds: int = Field(default=5, ge=2, le=20)
    compare: list[str] | None = Field(default=None, description="[base, tuned] model names for the comparison table")


@EXPERIMENTS.register(NAME)
class SelfScore(ExperimentBase):
    name = NAME
    Summary = summaries.SelfScoreSummary
    report_section = "judgegap.report.sections:selfscore"
    Params = SelfScoreParams
    dataset_kinds = ("qa",)

    @staticmethod
    def needs(p: SelfScoreParams) -> tuple[str, ...]:
        return ("generate", "score_choices", "multi_token_choices")  # the 1-10 scale has " 10"

    @staticmethod
    def models_used(p: SelfScoreParams, model_names: list[str]) -> dict[str, list[str]]:
        return {"models": model_names,
                "external_judges": list(p.external_judges) if isinstance(p.external_judges, list) else [],
                "compare": list(p.compare or []), "text_score_models": list(p.text_score_models or [])}

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        p = parse_experiment_params(SelfScoreParams, NAME, params)
        gen_t, score_t = PROMPTS.get(p.generate_template), PROMPTS.get(p.score_template)
        models = [m.name for m in ctx.config.models]
        judges = _external_judges(p, ctx)
        bad = [j for j in judges + (p.compare or []) if j not in models]
        if bad:
            raise ConfigError(f"experiments.{NAME}.params: unknown model(s) {', '.join(bad)}")
        qa = ctx.datasets_of_kind("qa")
        if not qa:
            raise ConfigError(f"experiment {NAME} needs a QA dataset (squad2, hotpotqa, musique, drop)")
        for ds, items in qa.items():
            metric = ctx.dataset_metrics[ds]
            unans = any(not it.answerable for it in items)
            for mc in ctx.config.models:
                be = ctx.backend(mc.name)
                comps = model_answers(ctx, mc, gen_t, items, unans, ds, f"{ds} · {mc.name} · answer")
                preds = [clean_answer(c.text) for c in comps]
                prompts = [score_t.render(context=it.context, question=it.question, candidate=display_answer(pr),
                                          allow_unanswerable=unans) for it, pr in zip(items, preds)]
                # every scorer (the author itself and the external judges) reads the same prompt
                scorers = [mc.name] + [j for j in judges if j != mc.name]
                recs = []
                per_scorer: dict[str, list[list[float]]] = {}
                exts: dict[str, list[list[list[int]]]] = {}
                for sname in scorers:
                    sbe = ctx.backend(sname)
                    exts[sname] = [sbe.choice_extensions(pr, list(SCORE_CHOICES)) for pr in prompts]
                    per_scorer[sname] = with_progress(
                        ctx, f"{ds} · {sname} scores {mc.name}", len(prompts), sbe,
                        lambda: sbe.score_choices(prompts, list(SCORE_CHOICES)))
                texts: list[str | None] = [None] * len(items)
                if p.text_score and (p.text_score_models is None or mc.name in p.text_score_models):
                    treqs = [GenRequest(pr, max_new_tokens=4, temperature=p.text_temperature, stop=("\n",),
                                        seed=ctx.config.seed) for pr in prompts]
                    texts = [c.text for c in with_progress(ctx, f"{ds} · {mc.name} · score (text)", len(treqs), be,
                                                           lambda: be.generate(treqs))]
                for k, (it, pred) in enumerate(zip(items, preds)):
                    em, f1 = score_item(metric, pred, it)
                    row: dict[str, Any] = {
                        "dataset": ds, "item_id": it.id, "model": mc.name, "prediction": pred,
                        "raw_text": comps[k].text, "em": em, "f1": f1, "correct": int(f1 >= p.f1_threshold),
                        "question": it.question, "answerable": it.answerable,
                        "gold": " | ".join(it.answers) if it.answerable else "(unanswerable)",
                        "text_reply": texts[k], "text_score": parse_score(texts[k]) if texts[k] is not None else None,
                        "template": score_t.id, "scores": {}}
                    for sname in scorers:
                        dist, mass = score_distribution(per_scorer[sname][k], extensions=exts[sname][k])
                        row["scores"][sname] = {"dist": [round(float(x), 6) for x in dist], "mass": mass,
                                                "expected": expected_score(dist), "argmax": argmax_score(dist),
                                                "top5": top_k_scores(dist, 5)}
                    recs.append((f"{ds}|{mc.name}|{it.id}", row))
                ctx.store.put_records(NAME, "scored_answer", recs)

    def item_calls(self, ctx: RunContext, params: dict[str, Any], ds_name: str, items: list[Any],
                   model_name: str) -> Callable[[Any], None] | None:
        """Item i's answer (a cache hit after asymmetry's) and the model's self-score of it (and the text
        reading), as the main pass makes them; external judges score it in :meth:`item_cross_calls`."""
        p = parse_experiment_params(SelfScoreParams, NAME, params)
        if not item_order_wanted(ctx, model_name):
            return None
        gen_t, score_t = PROMPTS.get(p.generate_template), PROMPTS.get(p.score_template)
        mc = next(m for m in ctx.config.models if m.name == model_name)
        unans = any(not it.answerable for it in items)
        aset = mc.answer_set(ds_name)
        be = ctx.backend(model_name)
        reqs = dict(zip((it.id for it in items), answer_requests(mc, gen_t, items, unans)))
        text = p.text_score and (p.text_score_models is None or model_name in p.text_score_models)

        def one(it: Any) -> None:
            raw = aset.answers[it.id] if aset is not None else be.generate([reqs[it.id]])[0].text
            prompt = score_t.render(context=it.context, question=it.question,
                                    candidate=display_answer(clean_answer(raw)), allow_unanswerable=unans)
            be.score_choices([prompt], list(SCORE_CHOICES))
            if text:
                be.generate([GenRequest(prompt, max_new_tokens=4, temperature=p.text_temperature, stop=("\n",),
                                        seed=ctx.config.seed)])
        return one

    def item_cross_calls(self, ctx: RunContext, params: dict[str, Any], ds_name: str, items: list[Any],
                         model_name: str) -> Callable[[Any], None] | None:
        """For an external judge that runs item by item: its scores of the OTHER models' answers to item i,
        made after their item-i calls, while this judge's KV state still holds item i's passage (the
        score prompt starts with it). Authors whose answers are made only in the main pass (a batching
        backend) are left to it, so their batches stay batches."""
        p = parse_experiment_params(SelfScoreParams, NAME, params)
        if model_name not in _external_judges(p, ctx) or not item_order_wanted(ctx, model_name):
            return None
        gen_t, score_t = PROMPTS.get(p.generate_template), PROMPTS.get(p.score_template)
        unans = any(not it.answerable for it in items)
        answer_of = other_models_answers(ctx, ds_name, items, model_name, gen_t, unans,
                                         lambda name: item_order_wanted(ctx, name))
        if not answer_of:
            return None
        be = ctx.backend(model_name)

        def cross(it: Any) -> None:
            prompts = [score_t.render(context=it.context, question=it.question,
                                      candidate=display_answer(clean_answer(f(it))), allow_unanswerable=unans)
                       for f in answer_of]
            be.score_choices(prompts, list(SCORE_CHOICES))
        return cross

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        p = parse_experiment_params(SelfScoreParams, NAME, params)
        kw = bootstrap_settings(config)
        return summarize_selfscore(store.records(NAME, "scored_answer"), p, kw,
                                   [m["name"] for m in config.get("models", [])])


def _external_judges(p: SelfScoreParams, ctx: RunContext) -> list[str]:
    """The models that score every other model's answers: all configured, none, or the listed ones."""
    if p.external_judges == "all":
        return [m.name for m in ctx.config.models]
    return [] if p.external_judges == "none" else list(p.external_judges)


def summarize_selfscore(recs: list[dict[str, Any]], p: SelfScoreParams, kw: dict[str, Any],
                        model_order: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"experiment": NAME, "score_scale": "1-10 -> confidence (s - 1) / 9",
                           "f1_threshold": p.f1_threshold, "datasets": {}}
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by[(r["dataset"], r["model"])].append(r)
    for (ds, m), rs in sorted(by.items()):
        out["datasets"].setdefault(ds, {})[m] = _summarize_group(rs, m, p, kw)
    if len({ds for ds, _ in by}) > 1:  # every dataset pooled: the headline when each set alone is small
        pooled: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (_, m), rs in by.items():
            pooled[m].extend(rs)
        out["datasets"][POOLED] = {m: _summarize_group(rs, m, p, kw) for m, rs in sorted(pooled.items())}
    if len(model_order) >= 2:
        pair = p.compare or model_order[:2]
        out["comparison"] = {ds: _compare(by, ds, pair[0], pair[1], kw) for ds in sorted({d for d, _ in by})
                             if (ds, pair[0]) in by and (ds, pair[1]) in by}
        out["comparison_pair"] = ("set by compare: [base, tuned]" if p.compare else
                                  "no compare: set in the config, so the first two configured models are shown as"
                                  " 'base' and 'tuned'")
    return est_dict(out)


def _summarize_group(rs: list[dict[str, Any]], m: str, p: SelfScoreParams, kw: dict[str, Any]) -> dict[str, Any]:
    """Every measure for one author model's scored answers (one dataset, or all pooled)."""
    rs = sorted(rs, key=lambda r: (r["dataset"], r["item_id"]))
    y = np.array([r["correct"] for r in rs], float)
    own = [r["scores"][m] for r in rs]
    e_self = np.array([s["expected"] for s in own])
    conf = np.array([to_confidence(x) for x in e_self])
    conf_arg = np.array([to_confidence(s["argmax"]) for s in own])
    res: dict[str, Any] = {
        "n": len(rs), "generation_accuracy": mean_ci(y, **kw),
        "mean_expected_score": float(e_self.mean()), "mean_score_mass": float(np.mean([s["mass"] for s in own])),
        "score_histogram": np.bincount([s["argmax"] for s in own], minlength=11)[1:].tolist(),
        "vs_gold": {"expected": calibration_report(y, conf, p.n_bins, **kw),
                    "argmax": calibration_report(y, conf_arg, p.n_bins, **kw)},
    }
    txt = [(yy, r["text_score"]) for yy, r in zip(y, rs) if r.get("text_score") is not None]
    res["text_n_unparsed"] = sum(r.get("text_reply") is not None and r.get("text_score") is None for r in rs)
    if txt:
        res["vs_gold"]["text"] = calibration_report(np.array([t[0] for t in txt]),
                                                    np.array([to_confidence(t[1]) for t in txt]), p.n_bins, **kw)
    # external judges as reference
    res["vs_judges"] = {}
    for j in sorted({k for r in rs for k in r["scores"]} - {m}):
        has = np.array([j in r["scores"] for r in rs])  # a judge may have scored only some datasets
        rj = [r for r, h in zip(rs, has) if h]
        e_j = np.array([r["scores"][j]["expected"] for r in rj])
        yj = (np.array([to_confidence(x) for x in e_j]) >= p.judge_threshold).astype(float)
        arg_j = [r["scores"][j]["argmax"] for r in rj]
        top5 = [r["scores"][m]["top5"] for r in rj]
        topk = {str(k): mean_ci([float(a in t[:k]) for a, t in zip(arg_j, top5)], **kw) for k in range(1, 6)}
        # the same agreement if the judge's scores were shuffled across items (exact expectation): when
        # both models put nearly every answer at "1", high top-k agreement says nothing about the item
        marg = np.bincount(arg_j, minlength=11)[1:] / len(arg_j)
        chance = {str(k): mean_ci([float(sum(marg[s - 1] for s in t[:k])) for t in top5], **kw)
                  for k in range(1, 6)}
        yi, yji = y[has].astype(int), yj.astype(int)
        res["vs_judges"][j] = {
            "n": len(rj),
            "calibration": calibration_report(yj, conf[has], p.n_bins, score=e_self[has], reference_score=e_j, **kw),
            "top_k_agreement": topk,
            "top_k_agreement_shuffled": chance,
            "reference_agreement": {
                "accuracy": mean_ci((yi == yji).astype(float), **kw),
                "kappa": bootstrap_indices(lambda i: cohen_kappa(yi[i], yji[i], 2), len(yi), **kw),
                "judge_accept_rate": float(yj.mean()),
                "judge_auroc_vs_gold": calibration_report(y[has], np.array([to_confidence(x) for x in e_j]),
                                                          p.n_bins, **kw)["auroc"],
                "note": "agreement between the two references: gold correctness vs this judge's verdict"},
        }
    res["routing"] = routing_summary(conf, y, p, kw)
    return res


def routing_summary(conf: np.ndarray, y: np.ndarray, p: SelfScoreParams, kw: dict[str, Any]) -> dict[str, Any]:
    rc = risk_coverage(conf, y)
    cc = cost_curve(conf, y, p.escalation_cost)
    return {
        "aurc": aurc(conf, y),
        "curve": {"coverage": rc["coverage"].tolist(), "accuracy": rc["accuracy"].tolist(),
                  "threshold": rc["threshold"].tolist()},
        "targets": {str(t): cross_validated_threshold(conf, y, folds=p.folds, seed=kw["seed"], target_accuracy=t)
                    for t in p.target_accuracies},
        "cost": {"escalation_cost": p.escalation_cost, "error_cost": 1.0, "best_threshold": cc["best_threshold"],
                 "best_cost": cc["best_cost"], "cost_accept_all": cc["cost_accept_all"],
                 "cost_escalate_all": cc["cost_escalate_all"],
                 "curve": {"escalation_rate": cc["escalation_rate"].tolist(), "cost": cc["cost"].tolist()}},
    }


def _compare(by: dict[tuple[str, str], list[dict[str, Any]]], ds: str, base: str, tuned: str,
             kw: dict[str, Any]) -> dict[str, Any]:
    """Seed 002's base-vs-tuned table: quality, calibration, and per-item win rates."""
    b = {r["item_id"]: r for r in by[(ds, base)]}
    t = {r["item_id"]: r for r in by[(ds, tuned)]}
    ids = sorted(set(b) & set(t))
    fb = np.array([b[i]["f1"] for i in ids])
    ft = np.array([t[i]["f1"] for i in ids])
    yb = np.array([b[i]["correct"] for i in ids], float)
    yt = np.array([t[i]["correct"] for i in ids], float)
    cb = np.array([to_confidence(b[i]["scores"][base]["expected"]) for i in ids])
    ct = np.array([to_confidence(t[i]["scores"][tuned]["expected"]) for i in ids])
    q_win = np.where(ft > fb, 1.0, np.where(ft == fb, 0.5, 0.0))
    eb, et = np.abs(cb - yb), np.abs(ct - yt)
    c_win = np.where(et < eb, 1.0, np.where(et == eb, 0.5, 0.0))
    return {"base": base, "tuned": tuned, "n": len(ids),
            "quality": {"base": mean_ci(yb, **kw), "tuned": mean_ci(yt, **kw), "difference": paired_diff_ci(yt, yb, **kw)},
            "ece": {"base": ece(yb, cb), "tuned": ece(yt, ct),
                    "difference": bootstrap_indices(lambda i: ece(yt[i], ct[i]) - ece(yb[i], cb[i]), len(ids), **kw)},
            "quality_win_rate": mean_ci(q_win, **kw), "calibration_win_rate": mean_ci(c_win, **kw),
            "definitions": "quality win: tuned F1 > base F1 (tie = 0.5); calibration win: |confidence - correct|"
                           " smaller for tuned than for base on the same item (tie = 0.5)"}
