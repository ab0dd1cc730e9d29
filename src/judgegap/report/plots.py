"""Matplotlib figures rendered to PNG bytes (embedded in the self-contained report)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _err(e: dict[str, Any]) -> tuple[float, float, float]:
    v, lo, hi = e["value"], e["ci_low"], e["ci_high"]
    if any(x is None or np.isnan(x) for x in (v, lo, hi)):
        return (v if v is not None else np.nan), 0.0, 0.0
    return v, max(v - lo, 0.0), max(hi - v, 0.0)


def bar_gen_vs_judge(rows: list[dict[str, Any]]) -> bytes:
    """rows: {label, series: {name: estimate}} -> grouped bars with CI whiskers."""
    names = list(rows[0]["series"]) if rows else []
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(rows) + 2), 3.6))
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(rows))
    for k, name in enumerate(names):
        vals = [_err(r["series"][name]) if r["series"].get(name) else (np.nan, 0, 0) for r in rows]
        ax.bar(x + k * width, [v[0] for v in vals], width, yerr=[[v[1] for v in vals], [v[2] for v in vals]],
               capsize=3, label=name)
    ax.set_xticks(x + width * (len(names) - 1) / 2, [r["label"] for r in rows], rotation=15, ha="right")
    ax.axhline(0.5, color="grey", ls=":", lw=1, label="chance accuracy of a balanced-set judge")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylim(min(-0.2, ax.get_ylim()[0]), 1)
    ax.set_ylabel("accuracy or J (95% CI)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def heatmap(matrix: list[list[float]], rows: list[str], cols: list[str], title: str) -> bytes:
    arr = np.array(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2.5, 0.7 * len(rows) + 1.8))
    im = ax.imshow(arr, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(cols)), cols, rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("author of the judged answer")
    ax.set_ylabel("judge")
    for i in range(arr.shape[0]):
        for j in range(arr.shape[1]):
            if not np.isnan(arr[i, j]):
                ax.text(j, i, f"{arr[i, j]:.2f}", ha="center", va="center",
                        color="white" if arr[i, j] < 0.6 else "black", fontsize=9)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str,
                xlabel: str = "judge P(correct)", ylabel: str = "fraction actually correct") -> bytes:
    """Reliability diagram: per curve, (mean predicted probability, observed frequency) per bin."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for name, (prob_pred, prob_true) in curves.items():
        ax.plot(prob_pred, prob_true, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig)


def bars_with_ci(rows: list[tuple[str, dict[str, Any]]], title: str, ylabel: str, ref: float | None = None,
                 ref_label: str = "") -> bytes:
    """One bar per (label, estimate) with 95% CI whiskers and an optional reference line."""
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(rows) + 2), 3.4))
    vals = [_err(e) for _, e in rows]
    x = np.arange(len(rows))
    ax.bar(x, [v[0] for v in vals], 0.6, yerr=[[v[1] for v in vals], [v[2] for v in vals]], capsize=3)
    ax.set_xticks(x, [lab for lab, _ in rows], rotation=20, ha="right", fontsize=8)
    if ref is not None:
        ax.axhline(ref, color="grey", ls=":", lw=1, label=ref_label)
        ax.legend(fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def value_heatmap(matrix: list[list[float]], rows: list[str], cols: list[str], title: str, xlabel: str,
                  ylabel: str, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "viridis") -> bytes:
    """A labelled heat map with the values written in the cells."""
    arr = np.array(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(min(1.1 * len(cols) + 2.5, 16), min(0.5 * len(rows) + 1.8, 12)))
    im = ax.imshow(arr, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if arr.size <= 120:
        for i in range(arr.shape[0]):
            for j in range(arr.shape[1]):
                if not np.isnan(arr[i, j]):
                    ax.text(j, i, f"{arr[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if arr[i, j] < vmin + 0.6 * (vmax - vmin) else "black")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def scatter_labelled(points: dict[str, tuple[float, float]], xlabel: str, ylabel: str, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(4.6, 4))
    for name, (x, y) in points.items():
        ax.scatter([x], [y], s=40)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


def reliability_bins_plot(curves: dict[str, list[dict[str, Any]]], title: str) -> bytes:
    """Reliability diagram from ``metrics.calibration.reliability_bins`` output."""
    pts = {name: ([b["confidence"] for b in bins], [b["frequency"] for b in bins])
           for name, bins in curves.items() if bins}
    return reliability(pts, title, xlabel="self-score confidence", ylabel="fraction correct")


def histograms(hists: dict[str, list[int]], title: str, xlabel: str = "argmax score") -> bytes:
    fig, ax = plt.subplots(figsize=(5, 3))
    width = 0.8 / max(len(hists), 1)
    for k, (name, h) in enumerate(hists.items()):
        x = np.arange(1, len(h) + 1)
        ax.bar(x + k * width - 0.4 + width / 2, h, width, label=name)
    ax.set_xticks(np.arange(1, 11))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("answers")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig)


def lines(series: dict[str, tuple[list[float], list[float]]], title: str, xlabel: str, ylabel: str,
          ylim: tuple[float, float] | None = (0, 1), xticklabels: list[str] | None = None,
          integer_x: bool = False) -> bytes:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, (x, y) in series.items():
        ax.plot(x, y, marker="." if len(x) < 60 else None, label=name)
    if xticklabels is not None:
        ax.set_xticks(range(len(xticklabels)), xticklabels, rotation=30, ha="right", fontsize=7)
    elif integer_x:  # rounds, steps: whole numbers only
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)
