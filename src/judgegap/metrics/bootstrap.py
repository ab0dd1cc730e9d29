"""Point estimates with percentile-bootstrap 95% confidence intervals.

Every number judgegap reports is an :class:`Estimate` (value, CI, n). Resampling is
over *item indices*, so several arrays measured on the same items (a model's
generation and judging scores, two judges) are resampled together: the CI of a
difference is then a paired CI. Seeds are fixed so reports are reproducible.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 12345


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}

    @classmethod
    def from_dict(cls, d: dict[str, float | int | None]) -> Estimate:
        """The inverse of ``to_dict`` after a JSON round trip (undefined numbers were written as null)."""
        nan = float("nan")
        return cls(*(nan if d.get(k) is None else float(d[k]) for k in ("value", "ci_low", "ci_high")),
                   int(d["n"]))

    def fmt(self, digits: int = 3, pct: bool = False) -> str:
        if np.isnan(self.value):
            return f"n/a (n={self.n})"
        k = 100.0 if pct else 1.0
        suf = "%" if pct else ""
        d = max(digits - 2, 0) if pct else digits
        return (f"{self.value * k:.{d}f}{suf} [{self.ci_low * k:.{d}f}, {self.ci_high * k:.{d}f}] (n={self.n})")

    @property
    def excludes_zero(self) -> bool:
        return bool(self.ci_low > 0 or self.ci_high < 0)


def settings(config: dict[str, Any] | None = None) -> dict[str, int]:
    """The bootstrap settings of a run, in one place: ``bootstrap_resamples`` from the config and a
    seed offset by the run's seed (every experiment's CIs use these; recorded with the config)."""
    config = config or {}
    return {"n_resamples": int(config.get("bootstrap_resamples", DEFAULT_RESAMPLES)),
            "seed": DEFAULT_SEED + int(config.get("seed", 0))}


def bootstrap_indices(
    statistic: Callable[[np.ndarray], float],
    n: int,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> Estimate:
    """CI of ``statistic(idx)`` where ``idx`` are resampled item indices.

    Resamples on which the statistic is undefined (NaN, e.g. AUROC with one class)
    are left out of the percentile computation.
    """
    idx = np.arange(n)
    value = float(statistic(idx)) if n else float("nan")
    if n < 2 or np.isnan(value):
        return Estimate(value, float("nan"), float("nan"), n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (idx,), lambda i: statistic(np.asarray(i, dtype=int)), vectorized=False,
            n_resamples=n_resamples, confidence_level=confidence, method="percentile",
            random_state=np.random.default_rng(seed),
        )
    dist = np.asarray(res.bootstrap_distribution, dtype=float)
    alpha = (1 - confidence) / 2
    if np.all(np.isnan(dist)):
        return Estimate(value, float("nan"), float("nan"), n)
    lo, hi = np.nanpercentile(dist, [100 * alpha, 100 * (1 - alpha)])
    return Estimate(value, float(lo), float(hi), n)


def mean_ci(values: np.ndarray | list[float], **kw) -> Estimate:
    """Mean with bootstrap CI (NaN entries dropped)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    return bootstrap_indices(lambda i: float(arr[i].mean()) if len(i) else float("nan"), len(arr), **kw)


def paired_diff_ci(a: np.ndarray | list[float], b: np.ndarray | list[float], **kw) -> Estimate:
    """mean(a) - mean(b) on the same items, with a paired bootstrap CI."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError("paired arrays must have the same length")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    return bootstrap_indices(lambda i: float(x[i].mean() - y[i].mean()), len(x), **kw)
