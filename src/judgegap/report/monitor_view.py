"""Self-contained HTML page for ``judgegap monitor``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgegap.report import plots
from judgegap.report.html import _ENV, b64


def build_monitor_report(result: dict[str, Any], source: str, path: Path, psi_threshold: float,
                         min_window: int) -> None:
    w = result["windows"]
    x = list(range(len(w)))
    series = {"PSI vs baseline": (x, [v["psi"] for v in w]),
              "ECE": (x, [v["ece"]["value"] if v.get("ece") else float("nan") for v in w]),
              "mean confidence-scale score / 10": (x, [v["mean_score"]["value"] / 10 for v in w])}
    png = b64(plots.lines(series, "per window", "window", "value", ylim=None,
                          xticklabels=[v["window"][:16] for v in w]))
    html = _ENV.get_template("monitor.html.jinja2").render(r=result, source=source, png=png,
                                                          psi_threshold=psi_threshold, min_window=min_window)
    path.write_text(html, encoding="utf-8")
