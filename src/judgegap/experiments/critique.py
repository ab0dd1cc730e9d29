"""The critique experiment (seed 004): does revising help, and does it matter who criticises?

Round 0 is each agent's answer (the asymmetry experiment's answer request, so a run with both
answers each item once). Then ``rounds`` rounds of each configured protocol
(judgegap.experiments.critique_protocols): in a round every agent may first receive a review of its
current answer (from itself or from a different model) and then answers again, or, in a debate,
answers again having seen the other agents' current answers. After every round each agent's
confidence in its current answer is read as its own verdict probability P(" Yes") under the judge
prompt (one log-prob pass; the asymmetry experiment's self-judgement at round 0).

Calls are batched per model within a phase of a round -- or, on backends that keep the last
prompt's KV state (llamacpp), made item by item, every protocol and round of an item back to back --
and go through the call cache, so a killed run resumes mid-round without repeating a call. Every
turn is stored (``critique/turn``), debate votes too (``critique/vote``); the summary compares
rounds on the same items with paired CIs (judgegap.metrics.critique) and reads the result against
seed 004's claims.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from judgegap.backends.base import Completion, GenRequest
from judgegap.experiments import summaries
from judgegap.experiments.base import (EXPERIMENTS, ExperimentBase, RunContext, all_judges, answer_requests,
                                       model_answers, parse_experiment_params, with_progress)
from judgegap.experiments.candidates import clean_answer, display_answer
from judgegap.experiments.critique_protocols import PROTOCOLS, Agent, Group
from judgegap.metrics.bootstrap import settings as bootstrap_settings
from judgegap.metrics.critique import same_answer, vote
from judgegap.metrics.qa import score_item
from judgegap.prompts import JUDGE_CHOICES, PROMPTS
from judgegap.store import Store
from judgegap.store.records import CritiqueTurn

NAME = "critique"


class CritiqueParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocols: list[str] = Field(default_factory=lambda: ["self-revise"], min_length=1,
                                 description="registered protocols: self-revise, cross-critique, debate,"
                                 " same-model-debate (each runs from the same round 0)")
    rounds: int = Field(default=2, ge=1, le=20, description="R: revision rounds after round 0")
    authors: Literal["all"] | list[str] = Field(default="all", description="models whose answers are revised"
                                                " (self-revise, cross-critique) or copied (same-model-debate)")
    critic: str | None = Field(default=None, description="cross-critique's reviewer (default: the next"
                               " configured model after each author)")
    debaters: Literal["all"] | list[str] = "all"
    self_critique: bool = Field(default=True, description="self-revise: the author reviews its own answer first")
    copies: int = Field(default=3, ge=2, le=16, description="same-model-debate: sampled copies per model")
    sample_temperature: float = Field(default=0.7, gt=0.0, le=2.0)
    confidence: Literal["self", "none"] = Field(default="self", description="self: each agent's P(Yes) on its"
                                                " current answer (needs log-probabilities); none: skip")
    critique_max_new_tokens: int = Field(default=48, ge=4, le=1024)
    generate_template: str = "qa_generate"
    judge_template: str = "qa_judge"
    critique_template: str = "qa_critique"
    revise_template: str = "qa_revise"
    debate_template: str = "qa_debate"
    f1_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    max_items: int | None = Field(default=None, ge=1)
    order: Literal["auto", "model", "item"] = Field(
        default="auto", description="call order: 'item' makes each item's calls (every protocol and round) back"
        " to back (the passage's KV prefix is reused); 'model' batches each phase; 'auto' = item where every"
        " backend of the group keeps a prefix cache (llamacpp)")

    @field_validator("protocols")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for name in v:
            PROTOCOLS.validate(name)
        if len(set(v)) != len(v):
            raise ValueError("a protocol is listed twice")
        return v

    @field_validator("generate_template", "judge_template", "critique_template", "revise_template",
                     "debate_template")
    @classmethod
    def _template(cls, v: str) -> str:
        return PROMPTS.validate(v)


class CritiqueSummary(summaries._Open):
    experiment: Literal["critique"]
    rounds: int
    datasets: dict[str, dict[str, Any]]
    readings: list[dict[str, Any]]


def _groups(p: CritiqueParams, models: list[str]) -> dict[str, list[Group]]:
    return {name: PROTOCOLS.get(name)().groups(p, models) for name in p.protocols}


@EXPERIMENTS.register(NAME)
class Critique(ExperimentBase):
    name = NAME
    Summary = CritiqueSummary
    report_section = "judgegap.report.critique_view:section"
    Params = CritiqueParams
    dataset_kinds = ("qa",)

    @staticmethod
    def needs(p: CritiqueParams) -> tuple[str, ...]:
        return ("generate", "score_choices") if p.confidence == "self" else ("generate",)

    @staticmethod
    def models_used(p: CritiqueParams, model_names: list[str]) -> dict[str, list[str]]:
        return {"authors": [] if p.authors == "all" else list(p.authors),
                "debaters": [] if p.debaters == "all" else list(p.debaters),
                "critic": [p.critic] if p.critic else []}

    @staticmethod
    def check(p: CritiqueParams, cfg: Any) -> None:
        from judgegap.experiments.base import check_all_judges

        calling = all_judges(cfg)
        files = {m.name for m in cfg.models if m.backend == "file"}
        for field_name, names in (("authors", p.authors), ("debaters", p.debaters)):
            bad = [n for n in (names if isinstance(names, list) else []) if n in files]
            if bad:
                raise ValueError(f"params.{field_name}: model {bad[0]} only supplies answers from a file; critique"
                                 " agents must answer again")
        if p.authors == "all" or p.debaters == "all":
            check_all_judges(cfg, Critique.needs(p))
        try:
            _groups(p, calling)
        except ValueError as exc:
            raise ValueError(f"params.protocols: {exc}") from None

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        p = parse_experiment_params(CritiqueParams, NAME, params)
        calling = all_judges(ctx.config)
        for ds, items in ctx.datasets_of_kind("qa").items():
            items = items[: p.max_items] if p.max_items else items
            tracks = [_Rounds(ctx, p, ds, items, proto, g) for proto, groups in _groups(p, calling).items()
                      for g in groups]
            by_item = [t for t in tracks if t.item_major()]
            _item_by_item(ctx, ds, by_item, len(items))
            for t in tracks:
                if t not in by_item:
                    t.run()

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        from judgegap.experiments.critique_summary import summarize_turns

        p = CritiqueParams.model_validate(params)
        return summarize_turns(store.records(NAME, "turn"), store.records(NAME, "vote"), p.rounds,
                               bootstrap_settings(config), p.f1_threshold)


def _item_by_item(ctx: RunContext, ds: str, tracks: list[_Rounds], n: int) -> None:
    """Every track's calls for one item -- all protocols, groups and rounds -- back to back, item after item.

    Why: every critique prompt opens with the item's passage (the version-2 templates), and a backend
    that keeps the last prompt's KV state evaluates a shared prefix once. Done round by round, each
    model re-read a ~1,300-token HotpotQA passage once per round and protocol; done item by item it
    reads it once per item (measured in benchmarks/RESULTS.md). Same requests as the batched order
    (tested); each item's turns are stored as soon as its last round is done, so an interrupted run
    reports the items it finished, and a resumed one finds their calls in the call cache."""
    if not tracks or n == 0:
        return
    prog = ctx.progress
    protos = ", ".join(dict.fromkeys(t.proto for t in tracks))
    task = prog.add_task(f"{ds} · critique · item by item ({protos})", total=n) if prog is not None else None
    for k in range(n):
        for t in tracks:
            t.run_item(k)
        if task is not None:
            prog.advance(task, 1)


class _Rounds:
    """One protocol on one group of agents over one dataset's items: round 0, then R rounds.

    A round is run for a list of item indices (``ks``), so the same requests are made batched
    (``run``: each round for all items, each phase one batch per model) or item by item
    (``run_item``, which ``_item_by_item`` calls for backends that keep the last prompt's KV state)."""

    def __init__(self, ctx: RunContext, p: CritiqueParams, ds: str, items: list[Any], proto: str, g: Group):
        self.ctx, self.p, self.ds, self.items, self.proto, self.g = ctx, p, ds, items, proto, g
        self.protocol = PROTOCOLS.get(proto)()
        self.metric = ctx.dataset_metrics[ds]
        self.unans = any(not it.answerable for it in items)
        self.models = {m.name: m for m in ctx.config.models}
        self.t = {k: PROMPTS.get(getattr(p, f"{k}_template")) for k in ("generate", "judge", "critique",
                                                                            "revise", "debate")}
        self.quiet = False  # inside run_item: no per-phase progress bars (_item_by_item shows one per item)
        # each agent's current answer and confidence per item, filled round by round (run, or run_item item by item)
        self.current: dict[str, list[str]] = {a.name: [""] * len(items) for a in g.agents}
        self.confs: dict[str, list[float | None]] = {a.name: [None] * len(items) for a in g.agents}

    def _label(self, agent: Agent, what: str, r: int) -> str:
        return f"{self.ds} · {self.proto} · {agent.name} · round {r} · {what}"

    def _calls(self, model: str, label: str, n: int, fn: Any) -> Any:
        be = self.ctx.backend(model)
        return fn(be) if self.quiet else with_progress(self.ctx, label, n, be, lambda: fn(be))

    def _gen(self, model: str, reqs: list[GenRequest], label: str) -> list[Completion]:
        return self._calls(model, label, len(reqs), lambda be: be.generate(reqs))

    def _decoding(self, agent: Agent, r: int) -> dict[str, Any]:
        g = self.models[agent.model].generation
        if agent.copy is None:
            return {"max_new_tokens": g.max_new_tokens, "temperature": g.temperature, "top_p": g.top_p,
                    "stop": tuple(g.stop), "seed": g.seed}
        # a sampled copy: its own seed per copy and round, so copies and rounds differ reproducibly
        return {"max_new_tokens": g.max_new_tokens, "temperature": self.p.sample_temperature, "top_p": g.top_p,
                "stop": tuple(g.stop), "seed": g.seed + 1000 * (agent.copy + 1) + r}

    def item_major(self) -> bool:
        if self.p.order != "auto":
            return self.p.order == "item"
        names = {a.model for a in self.g.agents} | ({self.g.critic} if self.g.critic else set())
        return all(self.ctx.backend(n).capabilities.prefix_cache for n in names)

    def round0(self, agent: Agent, ks: list[int]) -> list[Completion]:
        m = self.models[agent.model]
        items = [self.items[k] for k in ks]
        if agent.copy is None:
            if self.quiet and m.answer_set(self.ds) is None:
                reqs = answer_requests(m, self.t["generate"], items, self.unans)
                return self.ctx.backend(agent.model).generate(reqs)
            return model_answers(self.ctx, m, self.t["generate"], items, self.unans, self.ds,
                                 self._label(agent, "answer", 0))
        reqs = [GenRequest(r.prompt, **self._decoding(agent, 0))
                for r in answer_requests(m, self.t["generate"], items, self.unans)]
        return self._gen(agent.model, reqs, self._label(agent, "sampled answer", 0))

    def confidence(self, agent: Agent, preds: list[str], r: int, ks: list[int]) -> list[float | None]:
        if self.p.confidence == "none":
            return [None] * len(preds)
        from judgegap.experiments.asymmetry import judge_prompt, p_correct

        prompts = [judge_prompt(self.t["judge"], self.items[k], display_answer(pr), self.unans)
                   for k, pr in zip(ks, preds)]
        lps = self._calls(agent.model, self._label(agent, "confidence", r), len(prompts),
                          lambda be: be.score_choices(prompts, list(JUDGE_CHOICES)))
        return [p_correct(lp[0], lp[1])[0] for lp in lps]

    def critiques(self, agent: Agent, preds: list[str], r: int, ks: list[int]
                  ) -> tuple[str | None, list[Completion | None]]:
        critic = self.protocol.critic_of(self.p, self.g, agent)
        if critic is None:
            return None, [None] * len(preds)
        reqs = [GenRequest(self.t["critique"].render(context=self.items[k].context, question=self.items[k].question,
                                                     candidate=display_answer(pr), allow_unanswerable=self.unans),
                           max_new_tokens=self.p.critique_max_new_tokens, temperature=0.0, stop=("\n",))
                for k, pr in zip(ks, preds)]
        return critic, list(self._gen(critic, reqs, self._label(agent, f"review by {critic}", r)))

    def revise(self, agent: Agent, current: dict[str, list[str]], crit: list[Completion | None], critic: str | None,
               r: int, ks: list[int]) -> list[Completion]:
        reqs = []
        for k, cr in zip(ks, crit):
            it = self.items[k]
            common = {"context": it.context, "question": it.question, "allow_unanswerable": self.unans,
                      "previous": display_answer(current[agent.name][k])}
            if self.protocol.debate:
                others = [display_answer(current[o.name][k]) for o in self.g.agents if o.name != agent.name]
                prompt = self.t["debate"].render(others=others, **common)
            else:
                label = "Your own review" if critic == agent.model else "A reviewer's comment"
                prompt = self.t["revise"].render(feedback=(cr.text.strip() if cr else ""),
                                                 feedback_label=label, **common)
            reqs.append(GenRequest(prompt, **self._decoding(agent, r)))
        return self._gen(agent.model, reqs, self._label(agent, "answer", r))

    def run(self) -> None:
        """Rounds 0..R, each for all items at once (each phase one batch per model)."""
        ks = list(range(len(self.items)))
        for r in range(self.p.rounds + 1):
            self._round(r, ks)

    def run_item(self, k: int) -> None:
        """Rounds 0..R for item k alone, its calls back to back; its turns are stored when done."""
        self.quiet = True
        try:
            for r in range(self.p.rounds + 1):
                self._round(r, [k])
        finally:
            self.quiet = False

    def _round(self, r: int, ks: list[int]) -> None:
        """Round r on items ``ks``: each agent answers (round 0) or revises from every agent's round r-1
        answer in ``self.current``; its confidence is read; turns and votes are stored; then
        ``self.current`` and ``self.confs`` hold round r for those items."""
        current = self.current
        new: dict[str, tuple[list[str], list[float | None]]] = {}
        for a in self.g.agents:  # every agent revises from the same round r-1 state
            if r == 0:
                comps = self.round0(a, ks)
                critic, crit = None, [None] * len(ks)
                tid = "file" if comps and comps[0].finish_reason == "file" else self.t["generate"].id
            else:
                critic, crit = self.critiques(a, [current[a.name][k] for k in ks], r, ks)
                comps = self.revise(a, current, crit, critic, r, ks)
                tid = self.t["debate" if self.protocol.debate else "revise"].id
            preds = [clean_answer(c.text) for c in comps]
            conf = self.confidence(a, preds, r, ks)
            changed = [0 if r == 0 else int(not same_answer(current[a.name][k], y)) for k, y in zip(ks, preds)]
            self._store(a, r, ks, comps, preds, changed, conf, critic, crit, tid)
            new[a.name] = (preds, conf)
        for name, (preds, conf) in new.items():
            for k, y, c in zip(ks, preds, conf):
                current[name][k], self.confs[name][k] = y, c
        self._store_votes(r, ks)

    def _score(self, pred: str, it: Any) -> tuple[float, float, int]:
        em, f1 = score_item(self.metric, pred, it)
        return em, f1, int(f1 >= self.p.f1_threshold)

    def _store(self, a: Agent, r: int, ks: list[int], comps: list[Completion], preds: list[str], changed: list[int],
               conf: list[float | None], critic: str | None, crit: list[Completion | None], template: str) -> None:
        recs = []
        for k, c, pred, ch, cf, cr in zip(ks, comps, preds, changed, conf, crit):
            it = self.items[k]
            em, f1, ok = self._score(pred, it)
            recs.append((f"{self.ds}|{self.proto}|{self.g.name}|{a.name}|{r}|{it.id}", CritiqueTurn(
                dataset=self.ds, item_id=it.id, protocol=self.proto, group=self.g.name, agent=a.name,
                model=a.model, round=r, raw_text=c.text, prediction=pred, em=em, f1=f1, correct=ok,
                changed=ch, confidence=cf, critic=critic, critique=cr.text if cr else None,
                gen_tokens=c.n_tokens + (cr.n_tokens if cr else 0),
                prompt_tokens=c.n_prompt_tokens + (cr.n_prompt_tokens if cr else 0), template=template)))
        self.ctx.store.put_records(NAME, "turn", recs)

    def _store_votes(self, r: int, ks: list[int]) -> None:
        if not self.g.votes:
            return
        current, confs = self.current, self.confs
        names = [a.name for a in self.g.agents]
        recs = []
        for how in ("majority", "confidence"):
            for k in ks:
                it = self.items[k]
                pick = names[vote([current[n][k] for n in names], [confs[n][k] for n in names], how == "confidence")]
                pred = current[pick][k]
                em, f1, ok = self._score(pred, it)
                cf = [confs[n][k] for n in names if same_answer(current[n][k], pred)]
                recs.append((f"{self.ds}|{self.proto}|{self.g.name}|vote:{how}|{r}|{it.id}", CritiqueTurn(
                    dataset=self.ds, item_id=it.id, protocol=self.proto, group=self.g.name, agent=f"vote:{how}",
                    model="", round=r, raw_text=pred, prediction=pred, em=em, f1=f1, correct=ok, changed=0,
                    confidence=None if any(c is None for c in cf) else float(np.mean(cf)), critic=None,
                    critique=None, gen_tokens=0, prompt_tokens=0, template=f"vote:{how}")))
        self.ctx.store.put_records(NAME, "vote", recs)
