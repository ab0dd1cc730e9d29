"""Report view of the attention experiment: headline ratios, layer x head heat maps, per-layer lines.

Figures are embedded in the HTML and also written as PNG files next to it (``figures/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from judgegap.report import plots
from judgegap.report.html import b64


def attention_view(summ: dict[str, Any], fig_dir: Path | None = None) -> dict[str, Any]:
    spans = summ["spans"]
    rows, figs = [], []
    written: list[Path] = []
    if fig_dir is not None:
        fig_dir.mkdir(parents=True, exist_ok=True)

    def keep(name: str, png: bytes) -> str:
        if fig_dir is not None:
            (fig_dir / f"attention_{name}.png").write_bytes(png)
            written.append(fig_dir / f"attention_{name}.png")
        return b64(png)

    for ds, per_model in summ.get("datasets", {}).items():
        for m, r in per_model.items():
            rows.append({"dataset": ds, "model": m, **r})
            tag = f"{ds}_{m}".replace("/", "_").replace(" ", "_")
            pl = {mode: np.array(r["per_layer"][mode]) for mode in ("generate", "judge")}
            layers = list(range(pl["generate"].shape[0]))
            series = {}
            for s in ("context", "candidate", "question", "template"):
                k = spans.index(s)
                series[f"{s} · generate"] = (layers, pl["generate"][:, k].tolist())
                series[f"{s} · judge"] = (layers, pl["judge"][:, k].tolist())
            item = {"dataset": ds, "model": m,
                    "layers": keep(f"{tag}_per_layer", plots.lines(series, f"{ds} · {m}: attention mass per layer",
                                                                  "layer", "mass (mean over heads, items)"))}
            ph = {mode: np.array(r["per_head"][mode]) for mode in ("generate", "judge")}
            maps = []
            for s in ("context", "candidate"):
                k = spans.index(s)
                g, j = ph["generate"][:, :, k], ph["judge"][:, :, k]
                heads = [str(h) for h in range(g.shape[1])]
                lay = [str(x) for x in range(g.shape[0])]
                vmax = float(max(g.max(), j.max(), 1e-6))
                for mode, arr in (("generate", g), ("judge", j)):
                    maps.append(keep(f"{tag}_{s}_{mode}", plots.value_heatmap(
                        arr.tolist(), lay, heads, f"{m}: mass on {s}, {mode} mode", "head", "layer", 0.0, vmax)))
                with np.errstate(divide="ignore", invalid="ignore"):
                    lr = np.log2(np.where(j > 0, g / j, np.nan))
                maps.append(keep(f"{tag}_{s}_log2ratio", plots.value_heatmap(
                    lr.tolist(), lay, heads, f"{m}: log2(generate / judge), {s}", "head", "layer", -3.0, 3.0,
                    cmap="RdBu_r")))
            item["maps"] = maps
            figs.append(item)
    return {"rows": rows, "figs": figs, "spans": spans, "written": written, "definitions": summ.get("span_definitions", {}),
            "skipped": summ.get("n_skipped", {}),
            "seed_claim": summ.get("seed_claim", "")}
