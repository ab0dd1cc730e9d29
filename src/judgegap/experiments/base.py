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
from judgegap.errors import ConfigError
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


P = TypeVar("P", bound=BaseModel)


def parse_experiment_params(model: type[P], name: str, params: dict[str, Any]) -> P:
    """Validate an experiment's ``params`` (one clear line naming the bad field)."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"experiments.{name}.params.{loc}: {err['msg']}") from None


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
    name: str

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        """Make all model calls (through ctx.backend) and store records."""

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Compute the reported numbers from stored records only (no model calls)."""


EXPERIMENTS: Registry[type] = Registry("experiment")
