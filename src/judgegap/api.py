"""The Python API. The CLI is a thin layer over these functions.

    import judgegap as jg
    result = jg.run("configs/pairwise.yaml")              # or a dict, or a RunConfig
    gap = result.asymmetry.datasets["squad2"].models["smollm2"].gap_balanced_set
    print(gap.value, gap.ci_low, gap.ci_high, gap.n)     # an Estimate

``backends={"name": backend}`` replaces a configured model's backend by an object of your
own (any :class:`judgegap.Backend`); ``write=False`` runs in a temporary directory and keeps
nothing but the returned result (model calls still go to the call cache).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgegap.config import RunConfig, load_config, parse_config
from judgegap.metrics.bootstrap import Estimate

_EST_KEYS = {"value", "ci_low", "ci_high", "n"}


class View:
    """Attribute access over a summary mapping; estimate dicts come back as :class:`Estimate`."""

    __slots__ = ("_d", "_path")

    def __init__(self, d: Mapping[str, Any], path: str = "summary") -> None:
        self._d = d
        self._path = path

    @staticmethod
    def wrap(v: Any, path: str) -> Any:
        if isinstance(v, Mapping):
            if set(v) == _EST_KEYS:
                return Estimate.from_dict(v)
            return View(v, path)
        return v

    def __getattr__(self, name: str) -> Any:
        try:
            return View.wrap(self._d[name], f"{self._path}.{name}")
        except KeyError:
            raise AttributeError(f"{self._path} has no {name!r} (has: {', '.join(map(str, self._d))})") from None

    def __getitem__(self, key: str) -> Any:
        try:
            return View.wrap(self._d[key], f"{self._path}[{key!r}]")
        except KeyError:
            raise KeyError(f"{self._path} has no {key!r} (has: {', '.join(map(str, self._d))})") from None

    def __iter__(self):
        return iter(self._d)

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def keys(self):
        return self._d.keys()

    def to_dict(self) -> dict[str, Any]:
        return dict(self._d)

    def __repr__(self) -> str:
        return f"View({self._path}: {', '.join(map(str, self._d))})"


@dataclass
class RunResult:
    """What a run produced: the summary (as in summary.json) with attribute access per experiment."""

    summary: dict[str, Any]
    output_dir: Path | None
    config: RunConfig
    experiments: list[str] = field(default_factory=list)

    @property
    def run_status(self) -> dict[str, Any]:
        return self.summary.get("run_status", {})

    def __getattr__(self, name: str) -> Any:
        exps = self.__dict__.get("summary", {}).get("experiments", {})
        if name in exps:
            return View(exps[name], name)
        raise AttributeError(f"RunResult has no {name!r} (experiments: {', '.join(exps)})")


def as_config(config: RunConfig | Mapping[str, Any] | str | Path) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config), "config")
    return load_config(config)


def run(config: RunConfig | Mapping[str, Any] | str | Path, backends: Mapping[str, Any] | None = None,
        write: bool = True, resume: bool = False, overwrite: bool = False, console: Any = None) -> RunResult:
    """Run a config's experiments and return the result (see the module docstring)."""
    from rich.console import Console

    from judgegap.experiments.runner import run_config

    cfg = as_config(config)
    console = console or Console(stderr=True, quiet=not write)
    if write:
        summary = run_config(cfg, resume=resume, overwrite=overwrite, console=console, backends=backends)
        return RunResult(summary, Path(cfg.output_dir), cfg, [e.name for e in cfg.experiments])
    with tempfile.TemporaryDirectory(prefix="judgegap-") as tmp:
        tmp_cfg = cfg.model_copy(update={"output_dir": Path(tmp) / "run"})
        summary = run_config(tmp_cfg, console=console, backends=backends)
    return RunResult(summary, None, cfg, [e.name for e in cfg.experiments])


__all__ = ["RunResult", "View", "as_config", "load_config", "run"]
