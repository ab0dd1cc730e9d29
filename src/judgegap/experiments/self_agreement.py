"""The self_agreement experiment (seed 004): does a judge accept what it itself finds probable?

Reads the asymmetry experiment's judgments of the same run (every judge on every candidate: its
own answers, other models' answers, the gold and the wrong span), scores each candidate as a
continuation of the judge's *answer* prompt (one log-probability pass per candidate, through
the call cache), and estimates the effect of that log-probability on the verdict with correctness
held fixed (judgegap.metrics.self_agreement), for the judge's own answers and for the rest.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from judgegap.experiments import summaries
from judgegap.experiments.base import EXPERIMENTS, ExperimentBase, RunContext, parse_experiment_params, with_progress
from judgegap.metrics.bootstrap import settings as bootstrap_settings
from judgegap.metrics.self_agreement import self_agreement
from judgegap.prompts import PROMPTS
from judgegap.store import Store

NAME = "self_agreement"


class SelfAgreementParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generate_template: str = Field(default="qa_generate", description="the answer prompt the candidate is scored"
                                   " after (use the asymmetry experiment's)")
    judges: Literal["all"] | list[str] = "all"
    max_items: int | None = Field(default=None, ge=1)


class SelfAgreementSummary(summaries._Open):
    experiment: Literal["self_agreement"]
    datasets: dict[str, dict[str, Any]]


@EXPERIMENTS.register(NAME)
class SelfAgreement(ExperimentBase):
    name = NAME
    Summary = SelfAgreementSummary
    report_section = "judgegap.report.sections:self_agreement"
    Params = SelfAgreementParams
    dataset_kinds = ("qa",)

    @staticmethod
    def needs(p: SelfAgreementParams) -> tuple[str, ...]:
        return ("score_choices",)

    @staticmethod
    def models_used(p: SelfAgreementParams, model_names: list[str]) -> dict[str, list[str]]:
        return {"judges": [] if p.judges == "all" else list(p.judges)}

    @staticmethod
    def check(p: SelfAgreementParams, cfg: Any) -> None:
        from judgegap.experiments.base import check_all_judges

        if p.judges == "all":
            check_all_judges(cfg, ("score_choices",))

    @staticmethod
    def requires(p: SelfAgreementParams) -> dict[str, tuple[str, ...]]:
        return {"": ("asymmetry",)}

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        from judgegap.experiments.base import all_judges

        p = parse_experiment_params(SelfAgreementParams, NAME, params)
        gen_t = PROMPTS.get(p.generate_template)
        judges = all_judges(ctx.config) if p.judges == "all" else list(p.judges)
        judgments = ctx.store.records("asymmetry", "judgment")
        qa = ctx.datasets_of_kind("qa")
        for ds, items in qa.items():
            by_id = {it.id: it for it in (items[: p.max_items] if p.max_items else items)}
            unans = any(not it.answerable for it in items)
            for j in judges:
                rows = [r for r in judgments if r["dataset"] == ds and r["judge"] == j and r["item_id"] in by_id
                        and r["role"] != "ablation"]
                if not rows:
                    continue
                be = ctx.backend(j)
                prompts = [gen_t.render(context=by_id[r["item_id"]].context, question=by_id[r["item_id"]].question,
                                        allow_unanswerable=unans) for r in rows]

                def score() -> list[float]:
                    # one call per candidate: each has its own continuation (cached one by one)
                    tick, be.progress = be.progress, None
                    out = []
                    for pr, r in zip(prompts, rows):
                        out.append(be.score_choices([pr], [" " + r["candidate"]])[0][0])
                        if tick:
                            tick(1)
                    be.progress = tick
                    return out

                lps = with_progress(ctx, f"{ds} · {j} · candidate log-prob as generator", len(rows), be, score)
                recs = [(f"{ds}|{j}|{r['author']}|{r['item_id']}", {
                    "dataset": ds, "item_id": r["item_id"], "judge": j, "author": r["author"],
                    "own": r["author"] == j, "candidate": r["candidate"], "logp": lp,
                    "words": len(r["candidate"].split()), "p_correct": r["p_correct"], "label": r["label"],
                    "template": gen_t.id}) for r, lp in zip(rows, lps)]
                ctx.store.put_records(NAME, "scored_candidate", recs)

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        kw = bootstrap_settings(config)
        by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in store.records(NAME, "scored_candidate"):
            by[(r["dataset"], r["judge"])].append(r)
        out: dict[str, Any] = {"experiment": NAME, "datasets": {}, "definitions": {
            "logit_coef": "change in log-odds of accepting per SD of the candidate's log-probability under the judge"
                          " as a generator, correctness and length held fixed (0 = no self-agreement)",
            "stratified_spearman": "Spearman(log-prob, P(correct)) within correct and within incorrect candidates"}}
        for (ds, j), rs in sorted(by.items()):
            rs.sort(key=lambda r: (r["item_id"], r["author"]))
            out["datasets"].setdefault(ds, {})[j] = {
                "own": self_agreement([r for r in rs if r["own"]], kw),
                "others": self_agreement([r for r in rs if not r["own"]], kw),
                "all": self_agreement(rs, kw)}
        return out
