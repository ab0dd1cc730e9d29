"""Calibration and score-distribution drift over time windows of a production log.

Log schema (JSON Lines, one answered request per line)::

    {"id": "req-17", "timestamp": "2026-11-02T10:15:00Z", "self_score": 7.5, "outcome": 1}

* ``timestamp``: ISO 8601 (or a number of seconds since the epoch);
* ``self_score``: the model's self-score; its range is given by ``--score-range``
  (default 1..10) and mapped to a confidence in [0, 1];
* ``outcome`` (optional): 1 if the answer turned out right, 0 if wrong, absent/null if
  unknown. Calibration is computed on the lines that have one.

Lines that are not JSON, lack a field or carry a bad value are counted (with the first
few line numbers) and skipped; the rest is still processed. Each window is compared with
the baseline (the first ``baseline_windows`` windows): population stability index (PSI)
of the score distribution, and the change in ECE with a bootstrap CI. A window is
flagged when PSI >= ``psi_threshold`` (0.2 is the usual "significant shift") *and* a
chi-square test says the two score histograms differ, or when the ECE change's CI lies
entirely above 0. Both tests are Bonferroni-corrected over the windows compared (family
error 5%): PSI alone is noisy on small windows (about (bins - 1) x (1/n1 + 1/n2) with no
drift at all, i.e. ~0.15 for two windows of 120), and many windows mean many chances.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from judgegap.errors import DataError
from judgegap.metrics.bootstrap import bootstrap_indices, mean_ci
from judgegap.metrics.calibration import auroc, ece, psi

LOG_SCHEMA = {"id": "str (optional)", "timestamp": "ISO 8601 or epoch seconds", "self_score": "number",
              "outcome": "0/1 or null (optional)"}


@dataclass
class MonitorResult:
    windows: list[dict[str, Any]]
    n_lines: int
    n_bad: int
    bad_examples: list[str]
    baseline: dict[str, Any]
    flagged: list[str] = field(default_factory=list)
    n_out_of_range: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"n_lines": self.n_lines, "n_bad_lines": self.n_bad, "n_out_of_range": self.n_out_of_range,
                "bad_line_examples": self.bad_examples,
                "baseline": self.baseline, "windows": self.windows, "flagged_windows": self.flagged,
                "drift": bool(self.flagged), "schema": LOG_SCHEMA}


def _ts(v: Any) -> datetime:
    if isinstance(v, bool):
        raise ValueError("boolean timestamp")
    if isinstance(v, (int, float)):
        return datetime.fromtimestamp(float(v), tz=timezone.utc)
    t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def read_log(path: Path) -> tuple[pd.DataFrame, int, int, list[str]]:
    """(rows, total lines, bad lines, first bad-line reasons)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"log file not found: {path}")
    rows, bad, examples, total = [], 0, [], 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            total += 1
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
                score = rec["self_score"]
                if isinstance(score, bool) or not isinstance(score, (int, float)) or not np.isfinite(score):
                    raise ValueError(f"self_score {score!r} is not a number")
                out = rec.get("outcome")
                if out is not None and out not in (0, 1, True, False):
                    raise ValueError(f"outcome {out!r} is not 0/1/null")
                rows.append({"id": str(rec.get("id", lineno)), "time": _ts(rec["timestamp"]),
                             "score": float(score), "outcome": None if out is None else int(out)})
            except (json.JSONDecodeError, KeyError, ValueError, TypeError, OverflowError, OSError) as exc:
                bad += 1
                if len(examples) < 5:
                    what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)[:80]
                    examples.append(f"line {lineno}: {what}")
    if not rows:
        raise DataError(f"{path}: no usable log lines ({bad} bad of {total}); expected JSONL with {LOG_SCHEMA}")
    return pd.DataFrame(rows).sort_values("time", kind="stable").reset_index(drop=True), total, bad, examples


def _histogram_test(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> float:
    """p-value of a chi-square test that two samples share one binned distribution."""
    ha = np.histogram(np.clip(a, edges[0], edges[-1]), edges)[0]
    hb = np.histogram(np.clip(b, edges[0], edges[-1]), edges)[0]
    keep = (ha + hb) > 0
    if keep.sum() < 2:
        return 1.0
    return float(stats.chi2_contingency(np.vstack([ha[keep], hb[keep]]))[1])


def split_out_of_range(scores: np.ndarray, score_range: tuple[float, float], source: str) -> np.ndarray:
    """Mask of self-scores inside the declared scale; refuses when most are outside it.

    Clipping a 10-100 log to 1..10 made every score 10 and reported "no drift"; out-of-range
    scores are now excluded and counted, and a log mostly off-scale is an error."""
    lo, hi = score_range
    ok = (scores >= lo) & (scores <= hi)
    n_out = int((~ok).sum())
    if n_out * 2 > len(scores):
        example = float(scores[~ok][0])
        raise DataError(f"{source}: {n_out} of {len(scores)} self-scores lie outside the declared scale"
                        f" {lo:g}..{hi:g} (e.g. {example:g}); set --score-min / --score-max to the log's scale")
    return ok


def monitor_log(path: Path, window: str = "1D", score_range: tuple[float, float] = (1.0, 10.0),
                baseline_windows: int = 1, psi_threshold: float = 0.2, n_bins: int = 10,
                min_window: int = 20, n_resamples: int = 1000, seed: int = 12345) -> MonitorResult:
    """Per-window score distribution and calibration, compared with the baseline windows."""
    df, total, bad, examples = read_log(path)
    lo, hi = score_range
    inside = split_out_of_range(df["score"].to_numpy(float), score_range, str(path))
    n_out_of_range = int((~inside).sum())
    if n_out_of_range:
        examples = examples + [f"{n_out_of_range} self-score(s) outside {lo:g}..{hi:g} excluded"]
    df = df[inside].reset_index(drop=True)
    df["conf"] = (df["score"] - lo) / (hi - lo)
    try:
        df["window"] = df["time"].dt.floor(window)
    except ValueError as exc:
        raise DataError(f"bad window {window!r}: {exc} (use a pandas frequency such as 1h, 6h, 1D, 7D)") from None
    groups = [(w, g) for w, g in df.groupby("window", sort=True)]
    base_df = pd.concat([g for _, g in groups[:baseline_windows]])
    edges = np.linspace(0, 1, n_bins + 1)
    kw = {"n_resamples": n_resamples, "seed": seed}
    bl = base_df[base_df["outcome"].notna()]
    by, bp = bl["outcome"].to_numpy(float), bl["conf"].to_numpy(float)
    baseline = {"windows": [str(w) for w, _ in groups[:baseline_windows]], "n": len(base_df),
                "n_with_outcome": len(bl), "mean_score": float(base_df["score"].mean()),
                "ece": ece(by, bp, n_bins) if len(bl) else float("nan")}
    wins, flagged = [], []
    n_tested = max(1, sum(len(g) >= min_window for _, g in groups[baseline_windows:]))
    alpha = 0.05 / n_tested
    for k, (w, g) in enumerate(groups):
        lab = g[g["outcome"].notna()]
        y, pc = lab["outcome"].to_numpy(float), lab["conf"].to_numpy(float)
        row: dict[str, Any] = {"window": str(w), "n": len(g), "n_with_outcome": len(lab),
                               "is_baseline": k < baseline_windows,
                               "mean_score": mean_ci(g["score"].to_numpy(float), **kw).to_dict(),
                               "psi": psi(base_df["conf"].to_numpy(), g["conf"].to_numpy(), edges)}
        if len(lab) >= 2:
            row["accuracy"] = mean_ci(y, **kw).to_dict()
            row["ece"] = bootstrap_indices(lambda i: ece(y[i], pc[i], n_bins), len(y), **kw).to_dict()
            row["auroc"] = auroc(y, pc)
            if k >= baseline_windows and len(bl) >= 2:
                # unpaired windows: resample each independently, the CI of the ECE difference
                rng = np.random.default_rng(seed + k)
                diffs = [ece(y[ii], pc[ii], n_bins) - ece(by[jj], bp[jj], n_bins)
                         for ii, jj in ((rng.integers(0, len(y), len(y)), rng.integers(0, len(by), len(by)))
                                        for _ in range(n_resamples))]
                lo_d, hi_d = np.percentile(diffs, [100 * alpha / 2, 100 * (1 - alpha / 2)])
                row["ece_change"] = {"value": row["ece"]["value"] - baseline["ece"], "ci_low": float(lo_d),
                                     "ci_high": float(hi_d), "n": len(y)}
        reasons = []
        if k >= baseline_windows:
            row["score_shift_p"] = _histogram_test(base_df["conf"].to_numpy(), g["conf"].to_numpy(), edges)
        if k >= baseline_windows and len(g) >= min_window:
            if row["psi"] >= psi_threshold and row["score_shift_p"] < alpha:
                reasons.append(f"score distribution shifted (PSI {row['psi']:.2f} >= {psi_threshold},"
                               f" chi-square p={row['score_shift_p']:.1e})")
            ch = row.get("ece_change")
            if ch and ch["ci_low"] > 0:
                reasons.append(f"calibration worse (ECE +{ch['value']:.3f}, CI [{ch['ci_low']:.3f}, {ch['ci_high']:.3f}])")
        row["drift"] = reasons
        if reasons:
            flagged.append(str(w))
        wins.append(row)
    return MonitorResult(wins, total, bad, examples, baseline, flagged, n_out_of_range)
