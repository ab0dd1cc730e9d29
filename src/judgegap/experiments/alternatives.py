"""The alternatives experiment (seed 004): the judge picks among candidates instead of judging one.

After the asymmetry experiment of the same run, each judge sees, per item, its own answer among
``k`` alternatives drawn from what asymmetry judged on that item — other models' answers, the
wrong passage span and (``include_gold``) the gold answer — plus "none of these", lettered and
shuffled by a seeded per-item order, and again in the reversed order (position bias). The pick
is read from the letters' log-probabilities in one pass (judgegap.prompts.alternatives). The
summary (judgegap.metrics.alternatives) compares, on the same items, the accept rate of its own
wrong and right answers here against its single-candidate yes/no verdict in asymmetry.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from judgegap.experiments import summaries
from judgegap.experiments.base import (EXPERIMENTS, ExperimentBase, RunContext, all_judges, parse_experiment_params,
                                       with_progress)
from judgegap.metrics.alternatives import compare, pooled_pick, reading
from judgegap.metrics.bootstrap import settings as bootstrap_settings
from judgegap.metrics.squad import normalize_answer
from judgegap.prompts import PROMPTS
from judgegap.prompts.alternatives import LETTERS, NONE_TEXT, letter_choices
from judgegap.store import Store
from judgegap.store.records import AlternativesPick

NAME = "alternatives"
CLAIM = "Judging an answer against broader alternatives lowers the acceptance of one's own wrong answers"


class AlternativesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    judges: Literal["all"] | list[str] = "all"
    k: int = Field(default=3, ge=1, le=len(LETTERS) - 2, description="alternatives shown beside the judge's own"
                   " answer (fewer where the item has fewer distinct candidates)")
    include_gold: bool = Field(default=True, description="offer the gold answer among the alternatives")
    orders: int = Field(default=2, ge=1, le=2, description="1: one seeded shuffle; 2: also the reversed order")
    template: str = "qa_pick"
    max_items: int | None = Field(default=None, ge=1)

    def model_post_init(self, _: Any) -> None:
        PROMPTS.validate(self.template)


class AlternativesSummary(summaries._Open):
    experiment: Literal["alternatives"]
    datasets: dict[str, dict[str, Any]]
    readings: list[dict[str, Any]]


def option_set(rows: list[dict[str, Any]], judge: str, k: int, include_gold: bool, rng: random.Random
               ) -> tuple[list[dict[str, Any]], int] | None:
    """An item's options from the asymmetry judgments of ``judge`` on it: its own answer plus up to
    ``k`` alternatives with distinct normalised texts (the gold first when included, then other
    models' answers, then the wrong span), shuffled by ``rng``. None when the item has no own
    answer or no alternative. Returns (options, index of the own answer)."""
    own = next((r for r in rows if r["author"] == judge), None)
    if own is None:
        return None
    rank = {"gold": 0, "wrong_span": 2}
    pool = sorted((r for r in rows if r["author"] != judge and (include_gold or r["author"] != "gold")),
                  key=lambda r: (rank.get(r["author"], 1), r["author"]))
    seen = {normalize_answer(own["candidate"])}
    chosen = [own]
    for r in pool:
        key = normalize_answer(r["candidate"])
        if key not in seen and len(chosen) <= k:
            seen.add(key)
            chosen.append(r)
    if len(chosen) < 2:
        return None
    opts = [{"text": r["candidate"], "source": r["author"], "label": int(r["label"])} for r in chosen]
    rng.shuffle(opts)
    return opts, next(i for i, o in enumerate(opts) if o["source"] == judge)


@EXPERIMENTS.register(NAME)
class Alternatives(ExperimentBase):
    name = NAME
    Summary = AlternativesSummary
    report_section = "judgegap.report.alternatives_view:section"
    Params = AlternativesParams
    dataset_kinds = ("qa",)

    @staticmethod
    def needs(p: AlternativesParams) -> tuple[str, ...]:
        return ("score_choices",)

    @staticmethod
    def models_used(p: AlternativesParams, model_names: list[str]) -> dict[str, list[str]]:
        return {"judges": [] if p.judges == "all" else list(p.judges)}

    @staticmethod
    def check(p: AlternativesParams, cfg: Any) -> None:
        from judgegap.experiments.base import check_all_judges

        if p.judges == "all":
            check_all_judges(cfg, ("score_choices",))

    @staticmethod
    def requires(p: AlternativesParams) -> dict[str, tuple[str, ...]]:
        return {"": ("asymmetry",)}

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        p = parse_experiment_params(AlternativesParams, NAME, params)
        t = PROMPTS.get(p.template)
        judges = all_judges(ctx.config) if p.judges == "all" else list(p.judges)
        by: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in ctx.store.records("asymmetry", "judgment"):
            if r["role"] != "ablation":
                by[(r["dataset"], r["judge"], r["item_id"])].append(r)
        for ds, items in ctx.datasets_of_kind("qa").items():
            items = items[: p.max_items] if p.max_items else items
            unans = any(not it.answerable for it in items)
            for j in judges:
                jobs = []
                for it in items:
                    got = option_set(by.get((ds, j, it.id), []), j, p.k, p.include_gold,
                                     random.Random(f"{ctx.config.seed}:{ds}:{j}:{it.id}"))
                    if got is None:
                        continue
                    opts, _ = got
                    for order in range(p.orders):
                        shown = opts if order == 0 else opts[::-1]
                        letters = [{"letter": LETTERS[i], "text": o["text"]} for i, o in enumerate(shown)]
                        letters.append({"letter": LETTERS[len(shown)], "text": NONE_TEXT})
                        jobs.append((it, order, shown, t.render(context=it.context, question=it.question,
                                                                options=letters, allow_unanswerable=unans)))
                if not jobs:
                    continue
                be = ctx.backend(j)
                # one call per prompt: option counts differ between items (each is cached on its own)
                def score() -> list[list[float]]:
                    tick, be.progress = be.progress, None
                    out = []
                    for _, _, shown, prompt in jobs:
                        out.append(be.score_choices([prompt], letter_choices(len(shown) + 1))[0])
                        if tick:
                            tick(1)
                    be.progress = tick
                    return out

                lps = with_progress(ctx, f"{ds} · {j} · pick among alternatives", len(jobs), be, score)
                recs = []
                for (it, order, shown, _), lp in zip(jobs, lps):
                    m = max(lp)
                    ex = [math.exp(x - m) if m > -math.inf else 1.0 for x in lp]
                    probs = [e / sum(ex) for e in ex]
                    recs.append((f"{ds}|{j}|{it.id}|{order}", AlternativesPick(
                        dataset=ds, item_id=it.id, judge=j, order=order, options=[o["text"] for o in shown],
                        sources=[o["source"] for o in shown], labels=[o["label"] for o in shown], lp=list(lp),
                        probs=probs, own_index=next(i for i, o in enumerate(shown) if o["source"] == j),
                        pick=max(range(len(probs)), key=lambda i: probs[i]), template=t.id)))
                ctx.store.put_records(NAME, "pick", recs)

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        kw = bootstrap_settings(config)
        single = {(r["dataset"], r["judge"], r["item_id"]): r for r in store.records("asymmetry", "judgment")
                  if r["role"] == "self_judge"}
        picks: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in store.records(NAME, "pick"):
            picks[(r["dataset"], r["judge"], r["item_id"])].append(r)
        rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for key in sorted(picks):
            s = single.get(key)
            if s is None:
                continue
            row = pooled_pick(sorted(picks[key], key=lambda r: r["order"]))
            row.update(accept_single=int(s["p_correct"] > 0.5), p_single=float(s["p_correct"]), item_id=key[2])
            rows[key[:2]].append(row)
        out: dict[str, Any] = {"experiment": NAME, "datasets": {}, "readings": [], "definitions": {
            "accept (single)": "the yes/no judge's P(correct) > 0.5 on its own answer (asymmetry, same items)",
            "accept (alternatives)": "its own answer is the pick (letters' probabilities averaged over the orders)",
            "own_j": "accept rate on its own right answers - on its own wrong answers",
            "pick_accuracy": "the pick is a correct option, or 'none of these' when no option is correct"}}
        for (ds, j), rs in sorted(rows.items()):
            c = compare(rs, **kw)
            out["datasets"].setdefault(ds, {})[j] = c
            out["readings"].append({"dataset": ds, "judge": j, "claim": CLAIM, "verdict": reading(c),
                                    "estimate": c.get("delta", {}).get("accept_wrong"), "n_wrong": c.get("n_wrong")})
        return out
