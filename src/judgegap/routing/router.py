"""An embeddable router: accept, flag or escalate an answer from its self-score.

>>> r = Router(accept_at=0.8, escalate_below=0.4)
>>> r.decide(0.9).action, r.decide(0.6).action, r.decide(0.1).action
('accept', 'flag', 'escalate')

The router is saved as JSON together with the calibration it was fitted on (n, ECE,
AUROC, held-out accuracy), so whoever deploys it can see what the threshold promises.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from judgegap.errors import JudgegapError
from judgegap.routing.curves import cross_validated_threshold
from judgegap.store import jsonout

FORMAT = "judgegap.router/1"


@dataclass(frozen=True)
class Decision:
    action: str  # "accept", "flag" or "escalate"
    confidence: float
    reason: str


@dataclass
class Router:
    """Accept at confidence >= ``accept_at``; escalate below ``escalate_below``; flag in between."""

    accept_at: float
    escalate_below: float | None = None
    score_range: tuple[float, float] = (0.0, 1.0)  # raw self-score range mapped to confidence [0, 1]
    calibration: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.escalate_below is None:
            self.escalate_below = self.accept_at
        if self.escalate_below > self.accept_at:
            raise ValueError("escalate_below must not exceed accept_at")

    def confidence(self, score: float) -> float:
        lo, hi = self.score_range
        return float(min(max((score - lo) / (hi - lo), 0.0), 1.0))

    def decide(self, score: float) -> Decision:
        """Decide from a raw self-score (on ``score_range``); NaN/None escalate."""
        if score is None or (isinstance(score, float) and math.isnan(score)):
            return Decision("escalate", float("nan"), "no self-score")
        c = self.confidence(score)
        if c >= self.accept_at:
            return Decision("accept", c, f"confidence {c:.3f} >= {self.accept_at:.3f}")
        if c < self.escalate_below:
            return Decision("escalate", c, f"confidence {c:.3f} < {self.escalate_below:.3f}")
        return Decision("flag", c, f"confidence {c:.3f} between thresholds")

    @classmethod
    def fit(cls, scores: np.ndarray, correct: np.ndarray, target_accuracy: float,
            score_range: tuple[float, float] = (0.0, 1.0), folds: int = 5, seed: int = 0,
            flag_margin: float = 0.0) -> Router:
        """Fit the accept threshold for a target accepted accuracy (cross-validated)."""
        from judgegap.metrics.calibration import auroc, ece

        tmp = cls(accept_at=0.5, score_range=score_range)
        conf = np.array([tmp.confidence(s) for s in scores])
        y = np.asarray(correct, float)
        cv = cross_validated_threshold(conf, y, folds=folds, seed=seed, target_accuracy=target_accuracy)
        t = cv["threshold"]
        if math.isinf(t):
            t = 1.0 + 1e-9  # nothing reaches the target: accept nothing
        calib = {"n": int(len(y)), "base_accuracy": float(y.mean()), "ece": ece(y, conf), "auroc": auroc(y, conf),
                 "target_accuracy": target_accuracy, **{k: v for k, v in cv.items() if k != "target"}}
        return cls(accept_at=float(t), escalate_below=max(float(t) - flag_margin, 0.0), score_range=score_range,
                   calibration=calib)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: Path | str) -> None:
        Path(path).write_text(jsonout.dumps(self.to_dict(), indent=2, default=float))

    @classmethod
    def load(cls, path: Path | str) -> Router:
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise JudgegapError(f"cannot read router {p}: {exc}") from None
        if d.get("format") != FORMAT:
            raise JudgegapError(f"{p}: not a judgegap router file (format {d.get('format')!r})")
        return cls(accept_at=d["accept_at"], escalate_below=d["escalate_below"],
                   score_range=tuple(d["score_range"]), calibration=d.get("calibration", {}))
