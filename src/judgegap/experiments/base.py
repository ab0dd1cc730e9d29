"""What an experiment gets to work with, and the experiment registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from rich.console import Console

from judgegap.backends import CachedBackend
from judgegap.config import RunConfig
from judgegap.data.types import QAItem
from judgegap.errors import ConfigError, first_error
from judgegap.registry import Registry
from judgegap.store import Store


@dataclass
class RunContext:
    """Config, data, models (behind the cache) and the store, handed to an experiment."""

    config: RunConfig
    store: Store
    datasets: dict[str, list[Any]]  # QAItem or PairItem lists, by dataset name
    dataset_metrics: dict[str, str]
    pools: dict[str, list[QAItem]]  # unsampled items, e.g. for wrong-answer candidates
    backend_factory: Callable[[str], CachedBackend]
    console: Console = field(default_factory=Console)
    progress: Any = None  # rich.progress.Progress while running

    def backend(self, model_name: str) -> CachedBackend:
        return self.backend_factory(model_name)

    def datasets_of_kind(self, kind: str) -> dict[str, list[Any]]:
        """The configured datasets of one kind: ``qa`` (QAItem) or ``pairs`` (PairItem)."""
        from judgegap.data import DATASETS

        return {n: items for n, items in self.datasets.items() if DATASETS.get(n).kind == kind}


def answer_requests(model_cfg: Any, template: Any, items: list[QAItem], allow_unanswerable: bool) -> list[Any]:
    """The model's answer requests with its configured decoding (identical across experiments, so a
    run with several experiments answers each item once and the rest come from the cache)."""
    from judgegap.backends.base import GenRequest

    g = model_cfg.generation
    return [GenRequest(template.render(context=it.context, question=it.question,
                                       allow_unanswerable=allow_unanswerable),
                       max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p,
                       stop=tuple(g.stop), seed=g.seed) for it in items]


def model_answers(ctx: RunContext, model_cfg: Any, template: Any, items: list[QAItem], allow_unanswerable: bool,
                  dataset: str, label: str) -> list[Any]:
    """The model's answers to ``items``: read from its ``answers:`` file when it has one for this
    dataset (two-stage judging), else generated through its backend (and the call cache)."""
    from judgegap.backends.base import Completion

    aset = model_cfg.answer_set(dataset)
    if aset is not None:
        missing = [it.id for it in items if it.id not in aset.answers]
        if missing:  # the run restricts items to the file's ids, so this is a file changed mid-run
            raise ConfigError(f"{aset.path}: no answer for item {missing[0]!r} of {dataset}"
                              f" ({len(missing)} missing); was the file replaced during the run?")
        return [Completion(text=aset.answers[it.id], finish_reason="file") for it in items]
    be = ctx.backend(model_cfg.name)
    reqs = answer_requests(model_cfg, template, items, allow_unanswerable)
    return with_progress(ctx, label, len(reqs), be, lambda: be.generate(reqs))


def model_caps(model_cfg: Any) -> Any:
    """What a configured model can do: its backend's capabilities, with generation supplied by an
    answers file when it has one."""
    from dataclasses import replace

    from judgegap.backends import BACKENDS

    caps = BACKENDS.get(model_cfg.backend).capabilities_for(model_cfg)
    return replace(caps, generate=True) if model_cfg.answers is not None else caps


def all_judges(cfg: Any) -> list[str]:
    """What ``judges: all`` means: every configured model that makes calls (a ``file`` model only
    supplies answers)."""
    return [m.name for m in cfg.models if m.backend != "file"]


def check_all_judges(cfg: Any, needs: tuple[str, ...]) -> None:
    """``judges: all`` — every calling model must deliver ``needs`` (raise ValueError naming it)."""
    names = all_judges(cfg)
    if not names:
        raise ValueError("has no judge: every configured model only supplies answers from a file;"
                         " add a model whose backend returns log-probabilities")
    for m in cfg.models:
        if m.name in names:
            missing = [c for c in needs if not getattr(model_caps(m), c)]
            if missing:
                raise ValueError(f"needs {', '.join(CAPABILITY_WORDS.get(c, c) for c in missing)}, which model"
                                 f" {m.name} (backend {m.backend}) cannot provide")


P = TypeVar("P", bound=BaseModel)


def parse_experiment_params(model: type[P], name: str, params: dict[str, Any]) -> P:
    """Validate an experiment's ``params`` (one clear line naming the bad field)."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        loc, msg = first_error(exc)
        raise ConfigError(f"experiments.{name}.params.{loc}: {msg}") from None


def with_progress(ctx: RunContext, label: str, total: int, be: CachedBackend, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` (calls on ``be``) under a progress bar with ETA."""
    if ctx.progress is None:
        return fn()
    task = ctx.progress.add_task(label, total=total)
    be.progress = lambda k: ctx.progress.advance(task, k)
    try:
        result = fn()
    finally:
        be.progress = None
    ctx.progress.update(task, completed=total)
    return result


class Experiment(Protocol):
    """What an experiment declares (checked at config load, before any model call) and does.

    - ``Params``: pydantic model of its ``params`` (unknown keys are errors);
    - ``dataset_kinds``: the dataset kinds it reads ("qa", "pairs");
    - ``needs(params)``: backend capabilities (names of :class:`Capabilities` fields) every model
      it calls must have — a backend that lacks one is refused before the first call;
    - ``models_used(params, model_names)``: which configured models it calls, by params field;
    - ``requires(params)``: experiments that must run earlier in the same config;
    - ``run`` makes model calls and stores records; ``summarize`` reads records only.
    """

    name: str
    Params: type[BaseModel]
    dataset_kinds: tuple[str, ...]

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        """Make all model calls (through ctx.backend) and store records."""

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Compute the reported numbers from stored records only (no model calls)."""


class ExperimentBase:
    """Defaults for the declarations; experiments override what applies to them."""

    name = "experiment"
    Params: type[BaseModel] = BaseModel
    dataset_kinds: tuple[str, ...] = ("qa",)
    datasets_optional = False
    Summary: type[BaseModel] | None = None  # the shape of summarize()'s result (judgegap.experiments.summaries)
    report_section: str | None = None  # "module:function" returning a report Section (see judgegap.report.sections)

    @staticmethod
    def needs(params: Any) -> tuple[str, ...]:
        return ()

    @staticmethod
    def models_used(params: Any, model_names: list[str]) -> dict[str, list[str]]:
        """params field -> model names it refers to (checked against the configured models)."""
        return {"models": list(model_names)}

    @staticmethod
    def check(params: Any, cfg: Any) -> None:
        """Experiment-specific checks of the whole config (raise ValueError); run at load."""

    @staticmethod
    def keep_datasets(params: dict[str, Any], kept: set[str]) -> dict[str, Any]:
        """The raw params for a run of only the ``kept`` datasets (``run --dataset``): parts of the params that
        belong to a left-out dataset are dropped here, so the narrowed config validates and runs."""
        return params

    @staticmethod
    def role_needs(params: Any) -> dict[str, tuple[str, ...]] | None:
        """Capabilities per ``models_used`` field when roles differ (authors generate, judges score);
        None = every model used needs everything in ``needs``."""
        return None

    @staticmethod
    def requires(params: Any) -> dict[str, tuple[str, ...]]:
        """params field (or "") -> experiments that must come earlier (any one of them)."""
        return {}

    @classmethod
    def datasets_not_needed(cls, params: Any) -> bool:
        return cls.datasets_optional

    def item_calls(self, ctx: RunContext, params: dict[str, Any], ds_name: str, items: list[Any],
                   model_name: str) -> Callable[[Any], None] | None:
        """One item's calls on ``model_name``, exactly as ``run`` makes them, for the runner's item-major
        pre-pass (:func:`item_major_prepass`); None when this experiment makes none there, or when the
        model's calls should not be reordered (see :func:`item_order_wanted`)."""
        return None

    def item_cross_calls(self, ctx: RunContext, params: dict[str, Any], ds_name: str, items: list[Any],
                         model_name: str) -> Callable[[Any], None] | None:
        """One item's calls on ``model_name`` that read OTHER models' outputs for the same item (e.g. its
        judgements of their answers); the pre-pass makes them after every model's :meth:`item_calls`
        for that item, while ``model_name``'s KV state still holds the item's passage. None when none."""
        return None


def other_models_answers(ctx: RunContext, ds_name: str, items: list[Any], model_name: str, template: Any,
                         allow_unanswerable: bool, item_major: Callable[[str], bool]) -> list[Callable[[Any], str]]:
    """For a judge's cross-model calls in the item-major pass: one function per OTHER model giving its raw
    answer to an item — from its answers file, or its generate call (a call-cache hit after that model's
    own item calls). Models whose answers are made only in the main pass (``item_major`` false: a
    batching backend) are left out, so their batches stay batches."""
    out: list[Callable[[Any], str]] = []
    for m in ctx.config.models:
        if m.name == model_name:
            continue
        aset = m.answer_set(ds_name)
        if aset is not None:
            out.append(lambda it, aset=aset: aset.answers[it.id])
        elif item_major(m.name):
            reqs = dict(zip((it.id for it in items), answer_requests(m, template, items, allow_unanswerable)))
            out.append(lambda it, be=ctx.backend(m.name), reqs=reqs: be.generate([reqs[it.id]])[0].text)
    return out


def item_order_wanted(ctx: RunContext, model_name: str, order: str = "auto") -> bool:
    """Whether ``model_name``'s calls should run item by item: ``order`` "item" always, "model" never,
    "auto" when its backend keeps the last prompt's KV state (llamacpp), where it saves re-evaluating
    the passage and costs nothing; a batching backend (hf) is faster model by model."""
    if order != "auto":
        return order == "item"
    mc = next((m for m in ctx.config.models if m.name == model_name), None)
    if mc is not None and getattr(mc, "backend", "") == "file":
        return False
    return bool(ctx.backend(model_name).capabilities.prefix_cache)


def item_major_prepass(ctx: RunContext, experiments: list[tuple[Any, dict[str, Any]]]) -> None:
    """Make every experiment's per-item calls item by item, across experiments and models, before their
    own passes.

    For each QA dataset and item: first every model's own calls (its answer, its judgements of that
    answer and of the item's gold / wrong-span candidates, its self-score), then every model's calls on
    the other models' answers to the item (cross-model judgements). Each model has its own backend, so
    one with a prefix cache evaluates the passage once per item for the whole config, instead of once
    per experiment and again for each other author (Qwen2.5-Coder-1.5B on 2 CPU cores: ~10 s a SQuAD
    passage). The calls are exactly those the experiments' own passes make next, which then find them
    all in the call cache: the records are the same whether or not this ran, except that llama.cpp is
    not batch-invariant (a suffix after a reused prefix differs by up to ~0.1-0.2 nats), so a fixed call
    order — this one — gives fixed numbers.
    """
    for ds_name, items in ctx.datasets_of_kind("qa").items():
        plan: list[tuple[str, CachedBackend, list[tuple[str, Callable[[Any], None]]],
                         list[tuple[str, Callable[[Any], None]]]]] = []
        for m in ctx.config.models:
            own = [(exp.name, h) for exp, params in experiments if hasattr(exp, "item_calls")  # plugins may lack it
                   and (h := exp.item_calls(ctx, params, ds_name, items, m.name)) is not None]
            cross = [(exp.name, h) for exp, params in experiments if hasattr(exp, "item_cross_calls")
                     and (h := exp.item_cross_calls(ctx, params, ds_name, items, m.name)) is not None]
            if own or cross:
                plan.append((m.name, ctx.backend(m.name), own, cross))
        if plan:
            _run_item_major(ctx, ds_name, items, plan)


def _run_item_major(ctx: RunContext, ds_name: str, items: list[Any], plan: list[Any]) -> None:
    """Item by item: every model's own calls, then every model's cross-model calls; one progress tick
    per item (the backends' per-call ticks are off meanwhile)."""
    what = "; ".join(f"{name}: " + " + ".join(dict.fromkeys(n for n, _ in own + cross))
                     for name, _, own, cross in plan)
    task = (ctx.progress.add_task(f"{ds_name} · item by item ({what})", total=len(items))
            if ctx.progress is not None else None)
    saved = [(be, be.progress) for _, be, _, _ in plan]
    for be, _ in saved:
        be.progress = None
    own_hooks = [h for _, _, own, _ in plan for _, h in own]
    cross_hooks = [h for _, _, _, cross in plan for _, h in cross]
    try:
        for it in items:
            for h in own_hooks + cross_hooks:  # own calls of every model, then the cross-model calls
                h(it)
            if task is not None:
                ctx.progress.advance(task, 1)
    finally:
        for be, tick in saved:
            be.progress = tick
    if task is not None:
        ctx.progress.update(task, completed=len(items))


CAPABILITY_WORDS = {"generate": "text generation", "score_choices": "log-probabilities of given choices",
                    "top_logprobs": "top log-probabilities", "logprobs": "log-probabilities",
                    "multi_token_choices": "exact log-probabilities of multi-token choices (e.g. ' 10')",
                    "attention": "attention weights (the hf backend)"}


def validate_experiments(cfg: Any) -> None:
    """Every experiment's params, datasets, model names, dependencies and backend capabilities.

    Called when the config is loaded, so nothing is written and no model is called before a
    mistake in the LAST experiment is found. Raises ValueError naming the experiment and field."""
    from judgegap.data import DATASETS

    model_names = [m.name for m in cfg.models]
    by_name = {m.name: m for m in cfg.models}
    kinds = {DATASETS.get(d.name).kind for d in cfg.datasets}
    seen: list[str] = []
    for i, exp in enumerate(cfg.experiments):
        cls = EXPERIMENTS.get(exp.name)
        where = f"experiments[{i}] ({exp.name})"
        try:
            p = cls.Params.model_validate(exp.params)
        except ValidationError as exc:
            loc, msg = first_error(exc)
            raise ValueError(f"{where}.params.{loc}: {msg}") from None
        if cls.dataset_kinds and not kinds & set(cls.dataset_kinds) and not cls.datasets_not_needed(p):
            raise ValueError(f"{where} needs a dataset of kind {' or '.join(cls.dataset_kinds)}; none is configured")
        used: set[str] = set()
        roles = cls.models_used(p, model_names)
        for field_name, names in roles.items():
            bad = [n for n in names if n not in by_name]
            if bad:
                raise ValueError(f"{where}.params.{field_name}: unknown model(s) {', '.join(bad)}"
                                 f" (configured: {', '.join(model_names)})")
            used.update(names)
        for field_name, options in cls.requires(p).items():
            if not any(o in seen for o in options):
                what = f".params.{field_name}" if field_name else ""
                raise ValueError(f"{where}{what} needs the {' or '.join(options)} experiment earlier in experiments")
        needs = cls.needs(p)
        role_needs = getattr(cls, "role_needs", lambda _p: None)(p)
        for name in sorted(used):
            m = by_name[name]
            caps = model_caps(m)
            wanted = needs if role_needs is None else tuple(dict.fromkeys(
                c for f, names in roles.items() if name in names
                for c in role_needs.get(f, needs)))
            missing = [c for c in wanted if not getattr(caps, c)]
            if missing:
                raise ValueError(f"{where} needs {', '.join(CAPABILITY_WORDS.get(c, c) for c in missing)}, which"
                                 f" model {name} (backend {m.backend}) cannot provide")
        try:
            getattr(cls, "check", lambda _p, _c: None)(p, cfg)
        except ValueError as exc:
            raise ValueError(f"{where} {exc}") from None
        seen.append(exp.name)


EXPERIMENTS: Registry[type] = Registry("experiment")
