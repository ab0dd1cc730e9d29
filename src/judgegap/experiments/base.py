"""What an experiment gets to work with, and the experiment registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console

from judgegap.backends import CachedBackend
from judgegap.config import RunConfig
from judgegap.data.types import QAItem
from judgegap.registry import Registry
from judgegap.store import Store


@dataclass
class RunContext:
    """Config, data, models (behind the cache) and the store, handed to an experiment."""

    config: RunConfig
    store: Store
    datasets: dict[str, list[QAItem]]
    dataset_metrics: dict[str, str]
    pools: dict[str, list[QAItem]]  # unsampled items, e.g. for wrong-answer candidates
    backend_factory: Callable[[str], CachedBackend]
    console: Console = field(default_factory=Console)
    progress: Any = None  # rich.progress.Progress while running

    def backend(self, model_name: str) -> CachedBackend:
        return self.backend_factory(model_name)


class Experiment(Protocol):
    name: str

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        """Make all model calls (through ctx.backend) and store records."""

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Compute the reported numbers from stored records only (no model calls)."""


EXPERIMENTS: Registry[type] = Registry("experiment")
