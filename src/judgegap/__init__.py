"""judgegap: can a language model judge answers better than it generates them?

    import judgegap as jg
    result = jg.run("my.yaml")                 # or a dict; backends={...}, write=False
    result.asymmetry.datasets["squad2"].models["m"].gap_balanced_set   # an Estimate

The public API is re-exported here lazily, so ``import judgegap`` stays instant and imports
no experiment implementation; each concern lives in its own folder (data, metrics, backends,
prompts, experiments, store, report, routing, monitor).
"""

from __future__ import annotations

import importlib
from typing import Any

from judgegap.errors import JudgegapError

__version__ = "0.1.0"

_EXPORTS = {
    "run": "judgegap.api:run",
    "load_config": "judgegap.api:load_config",
    "RunResult": "judgegap.api:RunResult",
    "RunConfig": "judgegap.config:RunConfig",
    "Backend": "judgegap.backends.base:Backend",
    "Capabilities": "judgegap.backends.base:Capabilities",
    "ChatPrompt": "judgegap.backends.base:ChatPrompt",
    "GenRequest": "judgegap.backends.base:GenRequest",
    "Completion": "judgegap.backends.base:Completion",
    "BACKENDS": "judgegap.backends.base:BACKENDS",
    "QAItem": "judgegap.data.types:QAItem",
    "PairItem": "judgegap.data.pairs:PairItem",
    "DatasetSpec": "judgegap.data.registry:DatasetSpec",
    "register_dataset": "judgegap.data.registry:register_dataset",
    "Estimate": "judgegap.metrics.bootstrap:Estimate",
    "Router": "judgegap.routing.router:Router",
    "EXPERIMENTS": "judgegap.experiments.base:EXPERIMENTS",
    "ExperimentBase": "judgegap.experiments.base:ExperimentBase",
    "RunContext": "judgegap.experiments.base:RunContext",
}


def register_backend(name: str):
    """Decorator: ``@jg.register_backend("mine") class Mine(jg.Backend): ...``"""
    from judgegap.backends.base import BACKENDS

    return BACKENDS.register(name)


def register_experiment(name: str):
    """Decorator: ``@jg.register_experiment("mine") class Mine(jg.ExperimentBase): ...``"""
    from judgegap.experiments.base import EXPERIMENTS

    return EXPERIMENTS.register(name)


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'judgegap' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["JudgegapError", "__version__", "register_backend", "register_experiment", *_EXPORTS]
