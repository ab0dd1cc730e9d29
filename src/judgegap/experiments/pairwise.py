"""Pairwise judging against human labels, in both presentation orders.

For each pair and judge the verdict is read from the log-probabilities of the choice
tokens (" A", " B", and " Tie" where the set has ties) in one forward pass per order,
and optionally from a short greedy text reply. A pair's final verdict is the
order-consistent one (else 'inconsistent'); a second, order-averaged verdict averages
the two orders' probabilities. Saved verdicts from other judges (files) are stored as
records too, so they are measured with exactly the same code.

``self_pairs`` builds QA pairs from the asymmetry experiment's answers (one model's
answer correct, the other's wrong, by the official metric) to measure self-preference.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from judgegap.backends.base import ChatPrompt, GenRequest
from judgegap.data.verdicts import load_verdicts, normalise_verdict
from judgegap.errors import ConfigError, DataError
from judgegap.metrics.bootstrap import settings as bootstrap_settings
from judgegap.experiments import summaries
from judgegap.experiments.base import (EXPERIMENTS, ExperimentBase, RunContext, all_judges, check_all_judges,
                                       parse_experiment_params, with_progress)
from judgegap.metrics.agreement import (agreement_report, annotator_report, combine_orders, length_report,
                                        position_report)
from judgegap.metrics.bootstrap import bootstrap_indices
from judgegap.metrics.calibration import calibration_report, est_dict
from judgegap.prompts import PAIR_CHOICES, PAIR_TIE_CHOICE, PROMPTS
from judgegap.store import Store

NAME = "pairwise"
EMPTY = "(empty response)"  # some real responses are empty strings (54 in PandaLM's test set)


class SavedVerdicts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    dataset: str
    file: Path


class PairwiseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    judges: Literal["all"] | list[str] = "all"
    text_verdict: bool = True
    text_verdict_max_pairs: int | None = Field(default=None, ge=1, description="text mode on the first N pairs only")
    tie_option: Literal["auto", "always", "never"] = "auto"
    template: str = "pair_judge"
    self_pairs: bool = False
    self_pair_template: str = "qa_pair_judge"
    max_pairs_per_dataset: int | None = Field(default=None, ge=1)
    saved_verdicts: list[SavedVerdicts] = Field(default_factory=list)


_TEXT = re.compile(r"^[\s\"'*\[(]*(?:response|output)?\s*[\[(]*\s*(a|b|tie)\b", re.I)


def parse_pair_text(text: str) -> str | None:
    """'A', 'B', 'tie' from the start of a reply ("A", " B.", "Response A", "Tie"), else None."""
    m = _TEXT.match(text or "")
    if not m:
        return None
    w = m.group(1).lower()
    return "tie" if w == "tie" else w.upper()


def choice_probs(lps: list[float]) -> list[float]:
    """Probabilities renormalised over the offered choices."""
    m = max(lps)
    if m == -math.inf:
        return [1.0 / len(lps)] * len(lps)
    e = [math.exp(x - m) for x in lps]
    s = sum(e)
    return [x / s for x in e]


_LABELS = ("A", "B", "tie")


def _argmax_label(probs: list[float]) -> str:
    return _LABELS[int(np.argmax(probs))]


def averaged_verdict(p_first: list[float], p_swapped: list[float]) -> tuple[str, float]:
    """Order-debiased verdict: P(original A) averaged over both presentations."""
    pa = (p_first[0] + p_swapped[1]) / 2
    pb = (p_first[1] + p_swapped[0]) / 2
    pt = (p_first[2] + p_swapped[2]) / 2 if len(p_first) > 2 else 0.0
    return _argmax_label([pa, pb, pt]), pa


@EXPERIMENTS.register(NAME)
class Pairwise(ExperimentBase):
    name = NAME
    Summary = summaries.PairwiseSummary
    report_section = "judgegap.report.sections:pairwise"
    Params = PairwiseParams
    dataset_kinds = ("pairs",)

    @classmethod
    def datasets_not_needed(cls, p: PairwiseParams) -> bool:
        return p.self_pairs

    @staticmethod
    def needs(p: PairwiseParams) -> tuple[str, ...]:
        return ("score_choices", "generate") if p.text_verdict else ("score_choices",)

    @staticmethod
    def models_used(p: PairwiseParams, model_names: list[str]) -> dict[str, list[str]]:
        return {"judges": [] if p.judges == "all" else list(p.judges)}  # 'all': see check()

    @staticmethod
    def check(p: PairwiseParams, cfg: Any) -> None:
        if p.judges == "all":
            check_all_judges(cfg, Pairwise.needs(p))
        from judgegap.data import DATASETS

        pair_sets = [d.name for d in cfg.datasets if DATASETS.get(d.name).kind == "pairs"]
        for i, sv in enumerate(p.saved_verdicts):  # at load: a bad entry used to fail after every pair was judged
            if sv.dataset not in pair_sets:
                raise ValueError(f"params.saved_verdicts[{i}].dataset: {sv.dataset!r} is not among the configured"
                                 f" pairwise datasets ({', '.join(pair_sets) or 'none'})")
            try:
                load_verdicts(sv.file)
            except DataError as exc:
                raise ValueError(f"params.saved_verdicts[{i}].file: {exc}") from None

    @staticmethod
    def keep_datasets(params: dict[str, Any], kept: set[str]) -> dict[str, Any]:
        """Saved verdicts belong to their dataset: a run of some datasets only (``--dataset``) leaves out
        the saved verdicts of the others."""
        saved = params.get("saved_verdicts")
        if not isinstance(saved, list):
            return params
        return {**params, "saved_verdicts": [sv for sv in saved if not isinstance(sv, dict) or sv.get("dataset") in kept]}

    @staticmethod
    def requires(p: PairwiseParams) -> dict[str, tuple[str, ...]]:
        return {"self_pairs": ("asymmetry",)} if p.self_pairs else {}

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        p = parse_experiment_params(PairwiseParams, NAME, params)
        tmpl = PROMPTS.get(p.template)
        models = [m.name for m in ctx.config.models]
        judges = all_judges(ctx.config) if p.judges == "all" else list(p.judges)
        unknown = [j for j in judges if j not in models]
        if unknown:
            raise ConfigError(f"experiments.{NAME}.params.judges: unknown model(s) {', '.join(unknown)}")
        pair_sets = ctx.datasets_of_kind("pairs")
        if not pair_sets and not p.self_pairs and not p.saved_verdicts:
            raise ConfigError(f"experiment {NAME} needs a pairwise dataset (e.g. pandalm, llmbar-natural,"
                              " autoj-eval-p, judgebench), self_pairs: true, or saved_verdicts")
        for sv in p.saved_verdicts:  # no model involved: a file that matches no pair fails before the judges' calls
            self._saved(ctx, sv, pair_sets)
        for ds_name, items in pair_sets.items():
            items = items[: p.max_pairs_per_dataset] if p.max_pairs_per_dataset else items
            tie = p.tie_option == "always" or (p.tie_option == "auto" and any(it.label == "tie" for it in items))
            choices = list(PAIR_CHOICES) + ([PAIR_TIE_CHOICE] if tie else [])
            prompts: list[ChatPrompt] = []
            for it in items:
                for a, b in ((it.response_a, it.response_b), (it.response_b, it.response_a)):
                    prompts.append(tmpl.render(instruction=it.instruction, input=it.input,
                                               response_a=a or EMPTY, response_b=b or EMPTY, allow_tie=tie))
            for j in judges:
                be = ctx.backend(j)
                lps = with_progress(ctx, f"{ds_name} · {j} · pairs (log-prob, both orders)", len(prompts), be,
                                    lambda: be.score_choices(prompts, choices))
                texts: list[str | None] = [None] * len(prompts)
                if p.text_verdict:
                    n_text = 2 * min(len(items), p.text_verdict_max_pairs or len(items))
                    reqs = [GenRequest(pr, max_new_tokens=4, temperature=0.0, stop=("\n",)) for pr in prompts[:n_text]]
                    comps = with_progress(ctx, f"{ds_name} · {j} · pairs (text)", len(reqs), be,
                                          lambda: be.generate(reqs))
                    texts[:n_text] = [c.text for c in comps]
                recs = []
                for k, it in enumerate(items):
                    pf = choice_probs(lps[2 * k]) + ([] if tie else [0.0])
                    ps = choice_probs(lps[2 * k + 1]) + ([] if tie else [0.0])
                    vf, vs = _argmax_label(pf), _argmax_label(ps)
                    avg, pa = averaged_verdict(pf, ps)
                    tf, ts = texts[2 * k], texts[2 * k + 1]
                    pvf = parse_pair_text(tf) if tf is not None else None
                    pvs = parse_pair_text(ts) if ts is not None else None
                    recs.append((f"{ds_name}|{j}|{it.id}", {
                        **pair_fields(ds_name, it), "judge": j, "mode": "model", "template": tmpl.id,
                        "tie_option": tie, "p_first": pf, "p_swapped": ps, "verdict_first": vf,
                        "verdict_swapped": vs, "verdict": combine_orders(vf, vs), "verdict_averaged": avg,
                        "p_a_averaged": pa, "text_first": tf, "text_swapped": ts, "text_verdict_first": pvf,
                        "text_verdict_swapped": pvs,
                        "text_verdict": combine_orders(pvf, pvs) if tf is not None else None,
                    }))
                ctx.store.put_records(NAME, "pair", recs)
        if p.self_pairs:
            self._self_pairs(ctx, p, judges)

    def _saved(self, ctx: RunContext, sv: SavedVerdicts, pair_sets: dict[str, list]) -> None:
        # check() refused at load any entry whose dataset is not a configured pairwise set
        ctx.store.put_records(NAME, "pair", saved_verdict_records(sv.name, sv.dataset, pair_sets[sv.dataset],
                                                                  sv.file))

    def _self_pairs(self, ctx: RunContext, p: PairwiseParams, judges: list[str]) -> None:
        gens = ctx.store.records("asymmetry", "generation")
        if not gens:
            raise ConfigError(f"experiments.{NAME}.params.self_pairs needs the asymmetry experiment earlier in"
                              " the same run (it pairs the models' own answers)")
        tmpl = PROMPTS.get(p.self_pair_template)
        by_item: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
        for g in gens:
            by_item[(g["dataset"], g["item_id"])][g["model"]] = g
        rows = []
        for (ds, iid), per_model in sorted(by_item.items()):
            names = sorted(per_model)
            for a_i in range(len(names)):
                for b_i in range(a_i + 1, len(names)):
                    ga, gb = per_model[names[a_i]], per_model[names[b_i]]
                    if ga["correct"] == gb["correct"] or ga["prediction"].strip().lower() == gb["prediction"].strip().lower():
                        continue
                    rows.append((ds, iid, ga, gb))
        for j in judges:
            mine = [r for r in rows if j in (r[2]["model"], r[3]["model"])]
            if not mine:
                continue
            prompts = []
            for _, _, ga, gb in mine:
                for a, b in ((ga, gb), (gb, ga)):
                    prompts.append(tmpl.render(context=ga["context"], question=ga["question"],
                                               response_a=a["prediction"] or "(empty)",
                                               response_b=b["prediction"] or "(empty)"))
            be = ctx.backend(j)
            lps = with_progress(ctx, f"self-pairs · {j}", len(prompts), be,
                                lambda: be.score_choices(prompts, list(PAIR_CHOICES)))
            recs = []
            for k, (ds, iid, ga, gb) in enumerate(mine):
                pf, ps = choice_probs(lps[2 * k]) + [0.0], choice_probs(lps[2 * k + 1]) + [0.0]
                avg, pa = averaged_verdict(pf, ps)
                own_is_a = ga["model"] == j
                own, other = (ga, gb) if own_is_a else (gb, ga)
                p_own = pa if own_is_a else 1 - pa
                recs.append((f"{ds}|{j}|{iid}|{ga['model']}|{gb['model']}", {
                    "dataset": ds, "item_id": iid, "judge": j, "own_model": own["model"],
                    "other_model": other["model"], "own_correct": int(own["correct"]),
                    "own_answer": own["prediction"], "other_answer": other["prediction"],
                    "p_own": p_own, "prefers_own": int(p_own > 0.5),
                    "verdict": combine_orders(_argmax_label(pf), _argmax_label(ps)), "template": tmpl.id}))
            ctx.store.put_records(NAME, "self_pair", recs)

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        kw = bootstrap_settings(config)
        return summarize_pairs(store.records(NAME, "pair"), store.records(NAME, "self_pair"), kw)


def pair_fields(ds: str, it: Any) -> dict[str, Any]:
    return {"dataset": ds, "item_id": it.id, "label": it.label, "votes": list(it.votes),
            "len_a": len(it.response_a), "len_b": len(it.response_b), "instruction": it.instruction,
            "response_a": it.response_a, "response_b": it.response_b, "subset": it.metadata.get("subset", "")}


def saved_verdict_records(judge: str, dataset: str, items: list[Any], file: Path) -> list[tuple[str, dict[str, Any]]]:
    """Records for verdicts produced elsewhere, scored exactly like a model's verdicts.

    Items without a verdict in the file are kept as ``missing`` and values that do not
    parse are kept as unparseable (verdict None, which counts as no preference).
    """
    raw = load_verdicts(file)
    if not any(it.id in raw for it in items):
        raise DataError(f"{file}: no verdict matches an id of dataset {dataset}")
    recs = []
    for it in items:
        v = raw.get(it.id)
        nv = normalise_verdict(v) if it.id in raw else None
        recs.append((f"{dataset}|{judge}|{it.id}", {
            **pair_fields(dataset, it), "judge": judge, "mode": "saved", "raw_verdict": v,
            "missing": it.id not in raw, "verdict": nv, "verdict_first": nv, "verdict_swapped": None,
            "verdict_averaged": nv, "text_verdict": None, "source_file": str(file)}))
    return recs


def _p_a(r: dict[str, Any]) -> float:
    """Order-averaged P(original A better | not a tie)."""
    pf, ps = r["p_first"], r["p_swapped"]
    a, b = (pf[0] + ps[1]) / 2, (pf[1] + ps[0]) / 2
    return a / (a + b) if a + b > 0 else 0.5


def summarize_pairs(recs: list[dict[str, Any]], self_recs: list[dict[str, Any]], kw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"experiment": NAME, "datasets": {}, "self_preference": {}}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        groups[(r["dataset"], r["judge"])].append(r)
    for (ds, judge), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["item_id"])
        ref = [r["label"] for r in rs]
        js: dict[str, Any] = {"mode": rs[0]["mode"], "n_pairs": len(rs)}
        js["order_consistent"] = est_dict(agreement_report(ref, [r["verdict"] for r in rs], **kw))
        if rs[0]["mode"] == "model":
            js["order_averaged"] = est_dict(agreement_report(ref, [r["verdict_averaged"] for r in rs], **kw))
            nt = [r for r in rs if r["label"] != "tie"]
            if len(nt) >= 5:
                pa = np.array([_p_a(r) for r in nt])
                ya = np.array([float(r["label"] == "A") for r in nt])
                cal = calibration_report(ya, pa, 10, **kw)
                js["calibration_vs_human"] = est_dict({k: cal[k] for k in (
                    "n", "ece_equal_width", "ece_equal_mass", "brier", "auroc", "base_rate", "mean_confidence")})
            js["position"] = est_dict(position_report([r["verdict_first"] for r in rs],
                                                [r["verdict_swapped"] for r in rs], **kw))
            tr = [r for r in rs if r.get("text_first") is not None]  # text mode may cover a subset
            if tr:
                js["text"] = est_dict(agreement_report([r["label"] for r in tr], [r["text_verdict"] for r in tr],
                                                       **kw))
                js["text"]["n_unparsed_replies"] = sum(
                    (r["text_verdict_first"] is None) + (r["text_verdict_swapped"] is None) for r in tr)
                js["text_position"] = est_dict(position_report([r["text_verdict_first"] for r in tr],
                                                               [r["text_verdict_swapped"] for r in tr], **kw))
        else:
            js["n_missing"] = sum(bool(r.get("missing")) for r in rs)
            js["n_unparseable"] = sum(r["verdict"] is None and not r.get("missing") for r in rs)
            judged = [r for r in rs if r["verdict"] is not None]
            # default: score the pairs that have a verdict, and say how many that is; the number
            # over all pairs (no verdict = wrong: the published convention) stays beside it
            js["coverage"] = {"n_pairs": len(rs), "n_judged": len(judged),
                              "rate": len(judged) / len(rs) if rs else float("nan")}
            js["judged_pairs"] = est_dict(agreement_report([r["label"] for r in judged],
                                                           [r["verdict"] for r in judged], **kw)) if judged else None
            # the convention PandaLM's paper used: no verdict = "tie" (it can match a human tie)
            js["published_convention"] = est_dict(agreement_report(
                ref, [r["verdict"] if r["verdict"] is not None else "tie" for r in rs], **kw))
        # order-averaged verdicts: a position-biased judge's order-consistent verdicts are mostly
        # 'inconsistent', which would leave nothing to measure a length preference on
        js["length"] = est_dict(length_report([r["len_a"] for r in rs], [r["len_b"] for r in rs], ref,
                                              [r["verdict_averaged"] for r in rs], **kw))
        if rs[0].get("votes") and len(rs[0]["votes"]) > 1:
            js["annotators"] = est_dict(annotator_report([r["votes"] for r in rs], [r["verdict"] for r in rs], **kw))
        out["datasets"].setdefault(ds, {})[judge] = js
    for judge in sorted({r["judge"] for r in self_recs}):
        rs = [r for r in self_recs if r["judge"] == judge]
        own_wrong = np.array([r["prefers_own"] for r in rs if not r["own_correct"]], dtype=float)
        own_right = np.array([1 - r["prefers_own"] for r in rs if r["own_correct"]], dtype=float)
        wrong_idx = np.array([k for k, r in enumerate(rs) if not r["own_correct"]])
        errs = np.array([r["prefers_own"] if not r["own_correct"] else 1 - r["prefers_own"] for r in rs], float)
        is_own_wrong = np.array([not r["own_correct"] for r in rs])

        def diff(i: np.ndarray) -> float:
            a, b = errs[i][is_own_wrong[i]], errs[i][~is_own_wrong[i]]
            return float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")

        out["self_preference"][judge] = {
            "n_pairs": len(rs), "n_own_wrong": int(len(wrong_idx)),
            "picks_own_when_own_wrong": float(own_wrong.mean()) if len(own_wrong) else None,
            "picks_other_when_other_wrong": float(own_right.mean()) if len(own_right) else None,
            "self_preference": bootstrap_indices(diff, len(rs), **kw).to_dict(),
            "definition": "error rate in the judge's own favour (picks its own wrong answer) minus error rate"
                          " against itself (picks the other model's wrong answer); 0 = no self-preference",
        }
    return out
