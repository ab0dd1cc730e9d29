"""Training methods, registered by name: each turns training items into (prompt, target) examples.

The loss is computed on the target tokens only (labels are -100 on every prompt token): for
``judge-sft`` the target is the verdict token(s) (" Yes" / " No") that the asymmetry
experiment reads as P(correct); for ``gen-sft`` it is the gold answer. Prompts are the very
templates the experiments use, so training moves exactly the probability that is measured.

Users add methods from outside the package with ``METHODS.register("my-method")`` on a class
with the same shape (see :class:`TrainingMethod`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from judgegap.backends.base import ChatPrompt
from judgegap.config import ModelConfig
from judgegap.errors import ConfigError, first_error
from judgegap.registry import Registry

METHODS: Registry[type] = Registry("training method")


@dataclass(frozen=True)
class Example:
    """One supervised example: the loss is on ``target``'s tokens only."""

    prompt: ChatPrompt
    target: str
    source: str  # own | gold | wrong_span | gold_answer
    item_id: str
    dataset: str
    label: int | None = None  # the official metric's verdict on the candidate (judging methods)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainContext:
    """What a method gets: training items per dataset, their pools, the base model (behind the
    call cache, for the model's own answers) and the dataset metrics."""

    items: dict[str, list[Any]]
    pools: dict[str, list[Any]]
    metrics: dict[str, str]
    backend: Any
    model_cfg: Any
    seed: int = 0
    progress: Any = None


class TrainingMethod:
    """Base class: ``Params`` (pydantic), ``backends`` it can train, ``build_examples``."""

    name = "method"
    backends: tuple[str, ...] = ("hf",)
    Params: type[BaseModel] = BaseModel

    @classmethod
    def parse_params(cls, params: dict[str, Any]) -> Any:
        try:
            return cls.Params.model_validate(params)
        except ValidationError as exc:
            loc, msg = first_error(exc)
            raise ValueError(f"method.params.{loc}: {msg}") from None

    def check(self, params: Any, cfg: Any = None) -> None:
        """Input checks beyond the params' schema (e.g. a model's weights exist), before training."""
        if getattr(params, "probe_items", 0) and cfg is not None and not cfg.eval:
            raise ConfigError("method.params.probe_items needs eval: datasets to draw held-out probe items from")

    def build_examples(self, ctx: TrainContext, params: Any) -> list[Example]:
        raise NotImplementedError


class JudgeSFTParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    own_answers: float = Field(default=1.0, ge=0.0, le=4.0, description="share of the model's own answers used"
                               " (its own error distribution); >1 repeats them")
    balanced: float = Field(default=1.0, ge=0.0, le=4.0, description="share of gold / wrong-span candidates")
    class_balance: bool = Field(default=True, description="repeat the minority verdict until both are equal")
    f1_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    generate_template: str = "qa_generate@2"
    judge_template: str = "qa_judge@2"


def _share(rows: list[Example], share: float, rng: random.Random) -> list[Example]:
    whole, frac = int(share), share - int(share)
    out = rows * whole
    if frac > 0:
        out += rng.sample(rows, round(frac * len(rows)))
    return out


def candidate_examples(ctx: TrainContext, generate_template: str, f1_threshold: float, own_share: float,
                       balanced_share: float, make: Any, what: str, rng: random.Random) -> list[Example]:
    """The candidates judging methods train on, one example each via ``make(item, prediction, f1,
    label, source, dataset, allow_unanswerable)``: the model's own answers to the training items
    (its own error distribution; generated through the call cache) and the balanced gold /
    wrong-span pair, each labelled by the official metric, mixed by the two shares."""
    from judgegap.experiments.base import answer_requests, with_progress
    from judgegap.experiments.candidates import balanced_candidates, clean_answer
    from judgegap.metrics.qa import score_item
    from judgegap.prompts import PROMPTS

    gen_t = PROMPTS.get(generate_template)
    own: list[Example] = []
    bal: list[Example] = []
    for ds, items in ctx.items.items():
        metric = ctx.metrics[ds]
        unans = any(not it.answerable for it in ctx.pools[ds])

        def one(it: Any, text: str, source: str) -> Example:
            pred = clean_answer(text)
            f1 = score_item(metric, pred, it)[1]
            return make(it, pred, f1, int(f1 >= f1_threshold), source, ds, unans)

        if own_share > 0:
            reqs = answer_requests(ctx.model_cfg, gen_t, items, unans)
            comps = with_progress(ctx, f"{ds} · own answers to {what}", len(reqs), ctx.backend,
                                  lambda: ctx.backend.generate(reqs))
            own += [one(it, c.text, "own") for it, c in zip(items, comps)]
        if balanced_share > 0:
            cands = balanced_candidates(items, metric, f1_threshold, ctx.seed, pool=ctx.pools[ds])
            bal += [one(it, text, kind) for it in items for kind, text in cands.get(it.id, [])]
    return _share(own, own_share, rng) + _share(bal, balanced_share, rng)


@METHODS.register("judge-sft")
class JudgeSFT(TrainingMethod):
    """LoRA SFT on the judge prompt; loss on the verdict token only. Candidates: the model's own
    answers labelled by the official metric, plus a balanced gold / wrong-span pair per item."""

    name = "judge-sft"
    Params = JudgeSFTParams

    def build_examples(self, ctx: TrainContext, p: JudgeSFTParams) -> list[Example]:
        from judgegap.experiments.asymmetry import judge_prompt
        from judgegap.experiments.candidates import display_answer
        from judgegap.prompts import JUDGE_CHOICES, PROMPTS

        judge_t = PROMPTS.get(p.judge_template)
        yes, no = JUDGE_CHOICES
        rng = random.Random(ctx.seed)

        def judged(it: Any, pred: str, f1: float, label: int, source: str, ds: str, unans: bool) -> Example:
            """The judge prompt on one candidate, its target the official metric's verdict."""
            return Example(judge_prompt(judge_t, it, display_answer(pred), unans), yes if label else no,
                           source, it.id, ds, label, {"candidate": pred})

        rows = candidate_examples(ctx, p.generate_template, p.f1_threshold, p.own_answers, p.balanced, judged,
                                  "label", rng)
        if p.class_balance and rows:
            by = {0: [r for r in rows if r.label == 0], 1: [r for r in rows if r.label == 1]}
            small, big = sorted(by.values(), key=len)
            if small:
                rows = big + small * (len(big) // len(small)) + rng.sample(small, len(big) % len(small))
        rng.shuffle(rows)
        return rows


class GenSFTParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generate_template: str = "qa_generate@2"


@METHODS.register("gen-sft")
class GenSFT(TrainingMethod):
    """LoRA SFT on generation: the answer prompt, loss on the gold answer (the first gold string;
    "unanswerable" for unanswerable items) and the newline that ends it."""

    name = "gen-sft"
    Params = GenSFTParams

    def build_examples(self, ctx: TrainContext, p: GenSFTParams) -> list[Example]:
        from judgegap.experiments.candidates import ABSTAIN_TEXT
        from judgegap.prompts import PROMPTS

        gen_t = PROMPTS.get(p.generate_template)
        rows = []
        for ds, items in ctx.items.items():
            unans = any(not it.answerable for it in ctx.pools[ds])
            for it in items:
                gold = it.answers[0] if it.answerable and it.answers else ABSTAIN_TEXT
                prompt = gen_t.render(context=it.context, question=it.question, allow_unanswerable=unans)
                rows.append(Example(prompt, " " + gold + "\n", "gold_answer", it.id, ds, None))
        random.Random(ctx.seed).shuffle(rows)
        return rows


class MJDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: Literal["f1", "correct", "model"] = Field(
        default="f1", description="the target score: f1 = 1 + 9 x official F1 (rounded); correct = 10 if the"
        " official metric accepts the answer, else 1; model = reference_model's score distribution on the same"
        " self-score prompt (its expected score, rounded, as a hard target)")
    reference_model: ModelConfig | None = Field(
        default=None, description="the external judge for reference: model (any backend that scores choices:"
        " e.g. Qwen2.5-Coder-1.5B through llamacpp); its calls go through the call cache")
    targets: Literal["hard", "soft"] = Field(
        default="hard", description="hard: the loss on one score's tokens; soft: a cross-entropy against the whole"
        " reference distribution over the ten scores (f1: 1 + 9 F1 split between its two nearest scores, so the"
        " target's expected score is exactly 1 + 9 F1; model: the judge's distribution)")
    own_answers: float = Field(default=1.0, ge=0.0, le=4.0, description="share of the model's own answers")
    balanced: float = Field(default=1.0, ge=0.0, le=4.0, description="share of gold / wrong-span candidates")
    f1_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    generate_template: str = "qa_generate@2"
    score_template: str = "self_score@2"

    @model_validator(mode="after")
    def _reference_model(self) -> MJDParams:
        if self.reference == "model" and self.reference_model is None:
            raise ValueError("reference: model needs reference_model (the external judge's model entry)")
        if self.reference != "model" and self.reference_model is not None:
            raise ValueError(f"reference_model is given but reference is {self.reference!r} (set reference: model)")
        if self.reference_model is not None:
            from judgegap.backends import BACKENDS

            caps = BACKENDS.get(self.reference_model.backend).capabilities_for(self.reference_model)
            if not (caps.score_choices and caps.multi_token_choices):
                raise ValueError(f"reference_model backend {self.reference_model.backend!r} cannot score the ten"
                                 " score choices exactly (needs score_choices with multi-token choices)")
        return self


def one_hot_score(score: int) -> list[float]:
    """A hard score target as a distribution over 1..10."""
    if not 1 <= score <= 10:
        raise ValueError(f"score {score} is outside 1..10")
    return [float(s == score) for s in range(1, 11)]


def soft_f1_target(f1: float) -> list[float]:
    """1 + 9 F1 split between its two nearest scores (weights by distance), so the distribution's
    expected score is exactly 1 + 9 F1: F1 0.5 -> 5.5 = half 5, half 6."""
    if not 0.0 <= f1 <= 1.0:
        raise ValueError(f"F1 {f1} is outside [0, 1]")
    s = 1.0 + 9.0 * f1
    lo = min(int(s), 10)
    q = [0.0] * 10
    q[lo - 1] += 1.0 - (s - lo)
    if s > lo:
        q[lo] += s - lo
    return q


@METHODS.register("mjd")
class MaskedJudgeDistillation(TrainingMethod):
    """Masked Judge Distillation (seed 002): the self-score prompt on an answer, the loss on the score
    tokens only, the target a reference score (here from the official metric: a 1-10 score derived
    from F1, or 10/1 by correctness). " 10" is two tokens in these tokenizers and both carry the loss,
    so the tuned model's expected score -- what selfscore reads -- moves toward the reference."""

    name = "mjd"
    Params = MJDParams

    def check(self, p: MJDParams, cfg: Any = None) -> None:
        if p.reference_model is not None:
            from judgegap.experiments.runner import check_model

            check_model(p.reference_model, "method.params.reference_model")

    def build_examples(self, ctx: TrainContext, p: MJDParams) -> list[Example]:
        from judgegap.experiments.candidates import display_answer
        from judgegap.metrics.scores import SCORE_CHOICES, f1_reference_score
        from judgegap.prompts import PROMPTS

        score_t = PROMPTS.get(p.score_template)

        def scored(it: Any, pred: str, f1: float, label: int, source: str, ds: str, unans: bool) -> Example:
            ref = f1_reference_score(f1) if p.reference in ("f1", "model") else (10 if label else 1)
            prompt = score_t.render(context=it.context, question=it.question, candidate=display_answer(pred),
                                    allow_unanswerable=unans)
            # Every target is a distribution over the ten scores, trained as -log P(exactly s): a hard
            # " 1" is one-hot, and "exactly 1" also pushes down "0" after " 1" (" 10" = " 1" + "0" in the
            # bundled tokenizers). Trained as plain SFT labels, " 1" never did, the " 10" targets taught
            # "0" after every " 1", and the tuned SmolLM2 read every score as 10 (ECE 0.18 -> 0.86).
            q = soft_f1_target(f1) if p.targets == "soft" and p.reference == "f1" else one_hot_score(ref)
            meta: dict[str, Any] = {"candidate": pred, "reference": ref, "f1": f1, "soft_target": q,
                                    "soft_choices": list(SCORE_CHOICES)}
            return Example(prompt, f" {ref}", source, it.id, ds, label, meta)

        rng = random.Random(ctx.seed)
        rows = candidate_examples(ctx, p.generate_template, p.f1_threshold, p.own_answers, p.balanced, scored,
                                  "score", rng)
        if p.reference == "model":
            rows = reference_model_targets(ctx, p, rows)
        rng.shuffle(rows)
        return rows


def reference_model_targets(ctx: TrainContext, p: MJDParams, rows: list[Example]) -> list[Example]:
    """Each example's target from the external judge: its score distribution on the very same
    self-score prompt (exact choice probabilities, as selfscore reads them), through the call
    cache. Hard: the rounded expected score; soft: the distribution itself. The F1-derived score
    stays in meta (``f1_reference``) for the record."""
    from dataclasses import replace

    from judgegap.backends import CachedBackend, make_backend
    from judgegap.experiments.base import with_progress
    from judgegap.metrics.scores import SCORE_CHOICES, expected_score, score_distribution

    assert p.reference_model is not None
    raw = make_backend(p.reference_model)
    ref_be = CachedBackend(raw, ctx.backend.store, label=p.reference_model.name)
    try:
        prompts = [r.prompt for r in rows]
        choices = list(SCORE_CHOICES)
        lps = with_progress(ctx, f"reference scores ({p.reference_model.name})", len(prompts), ref_be,
                            lambda: ref_be.score_choices(prompts, choices))
        exts = [ref_be.choice_extensions(pr, choices) for pr in prompts]
    finally:
        raw.close()
    out = []
    for r, lp, ext in zip(rows, lps, exts):
        dist, mass = score_distribution(lp, choices, ext)
        ref = int(min(10, max(1, round(expected_score(dist)))))
        meta = r.meta | {"f1_reference": r.meta["reference"], "reference": ref,
                         "reference_dist": [round(float(x), 6) for x in dist], "reference_mass": round(mass, 6),
                         "soft_target": [float(x) for x in dist] if p.targets == "soft" else one_hot_score(ref),
                         "soft_choices": choices}
        out.append(replace(r, target=f" {ref}", meta=meta))
    return out


class OnlineParams(BaseModel):
    """What every online (GRPO rounds) method takes."""

    model_config = ConfigDict(extra="forbid")
    rounds: int = Field(default=3, ge=1, le=100)
    prompts_per_round: int = Field(default=16, ge=1, le=10000, description="fresh training prompts per round")
    num_generations: int = Field(default=4, ge=2, le=64, description="sampled replies per prompt (GRPO group)")
    batch_size: int = Field(default=8, ge=2, description="replies per policy step (a multiple of num_generations)")
    max_completion_tokens: int = Field(default=24, ge=4, le=512)
    temperature: float = Field(default=1.0, gt=0.0, le=2.0)
    kl_beta: float = Field(default=0.0, ge=0.0, description="GRPO's KL penalty to the base policy (0 = none)")
    probe_items: int = Field(default=0, ge=0, le=2000, description="held-out items per eval dataset scored before"
                             " the first round and after every round: the self-score calibration curve (0 = none)")
    score_template: str = Field(default="self_score@2", description="the self-score prompt (SEE's MJD step and"
                                " reward; the probe's calibration reading)")

    @field_validator("batch_size")
    @classmethod
    def _groups_fit(cls, v: int, info: Any) -> int:
        g = info.data.get("num_generations")
        if g and v % g:
            raise ValueError(f"{v} must be a multiple of num_generations ({g})")
        return v


class SEEParams(OnlineParams):
    mjd_epochs: float = Field(default=1.0, gt=0.0, description="MJD passes over each round's samples")
    reference: Literal["f1", "correct"] = "f1"
    self_score: Literal["assessment", "reply"] = Field(
        default="assessment", description="assessment: the policy's expected score from the separate self-score"
        " prompt on its answer (what selfscore measures; always readable); reply: the score the policy writes"
        " after its answer (SEE's format, generate_template qa_generate_scored; unreadable = format penalty)")
    w_quality: float = Field(default=0.7, ge=0.0)
    w_calibration: float = Field(default=0.3, ge=0.0)
    gamma: float = Field(default=2.0, gt=0.0)
    format_penalty: float = -1.0
    f1_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    generate_template: str | None = Field(default=None, description="default: qa_generate@2 (assessment),"
                                          " qa_generate_scored@1 (reply)")

    @property
    def policy_template(self) -> str:
        return self.generate_template or ("qa_generate@2" if self.self_score == "assessment" else "qa_generate_scored@1")

    @field_validator("w_calibration")
    @classmethod
    def _weights(cls, v: float, info: Any) -> float:
        if v + info.data.get("w_quality", 0.0) <= 0:
            raise ValueError("w_quality + w_calibration must be positive")
        return v


@METHODS.register("see")
class SEE(TrainingMethod):
    """Calibration-coupled online learning (seed 002's SEE): per round a GRPO policy step rewarded by
    answer quality and self-score agreement with the reference, then an MJD step on the round's own
    samples (judgegap.training.see). Needs trl."""

    name = "see"
    Params = SEEParams
    online = True

    def build_examples(self, ctx: TrainContext, p: SEEParams) -> list[Example]:
        return []  # online: each round makes its own samples

    def train_online(self, be: Any, ctx: TrainContext, cfg: Any, p: SEEParams, out: Any, resume: bool,
                     progress: Any) -> dict[str, Any]:
        _need_trl("see")
        from judgegap.training.see import train_see

        return train_see(be, ctx, cfg, p, out, resume, progress)


def _need_trl(method: str) -> None:
    try:
        import trl  # noqa: F401
    except ImportError:
        from judgegap.errors import JudgegapError

        raise JudgegapError(f"method {method!r} needs trl: pip install -e \".[train]\"") from None


class SERLParams(OnlineParams):
    generate_template: str = "qa_generate@2"
    pair_template: str = Field(default="qa_pair_judge@1", description="the pairwise judge prompt (answers A and B;"
                               " read as P(' A') vs P(' B'))")
    f1_threshold: float = Field(default=0.5, gt=0.0, le=1.0, description="for the logged diagnostic only")


@METHODS.register("serl")
class SERL(TrainingMethod):
    """Self-rewarding online learning (seed 004's SERL): GRPO rounds whose reward is each sampled
    answer's win rate under the policy's own pairwise judgement, counting only pairs judged the same
    in both orders (ranking consistency); no external signal (judgegap.training.serl). Needs trl."""

    name = "serl"
    Params = SERLParams
    online = True

    def build_examples(self, ctx: TrainContext, p: SERLParams) -> list[Example]:
        return []

    def train_online(self, be: Any, ctx: TrainContext, cfg: Any, p: SERLParams, out: Any, resume: bool,
                     progress: Any) -> dict[str, Any]:
        _need_trl("serl")
        from judgegap.training.serl import train_serl

        return train_serl(be, ctx, cfg, p, out, resume, progress)


def describe(rows: list[Example]) -> dict[str, Any]:
    """Counts by source and label, recorded with the adapter."""
    return {"n": len(rows), "by_source": dict(Counter(r.source for r in rows)),
            "by_label": {str(k): v for k, v in Counter(r.label for r in rows if r.label is not None).items()}}


def method_params(name: str, params: dict[str, Any]) -> Any:
    try:
        return METHODS.get(name).parse_params(params)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
