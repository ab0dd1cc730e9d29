"""Report view of the pairwise and GE-consistency experiments."""

from __future__ import annotations

from typing import Any

import numpy as np

from judgegap.report import plots
from judgegap.report.html import b64


def pairwise_view(summ: dict[str, Any]) -> dict[str, Any]:
    rows, ceilings, pos_bars = [], [], []
    judges: list[str] = []
    datasets = list(summ.get("datasets", {}))
    for ds, per_judge in summ.get("datasets", {}).items():
        for judge, js in per_judge.items():
            judges.append(judge) if judge not in judges else None
            rows.append({"dataset": ds, "judge": judge, **js})
            if js.get("position"):
                pos_bars.append((f"{judge}\n{ds}", js["position"]["first_position_rate"]))
            if js.get("annotators") and not any(c["dataset"] == ds for c in ceilings):
                ceilings.append({"dataset": ds, **js["annotators"]})
    kappa = [[(summ["datasets"][d].get(j) or {}).get("order_consistent", {}).get("kappa", {}).get("value", np.nan)
              for d in datasets] for j in judges]
    return {
        "rows": rows, "ceilings": ceilings, "self_preference": summ.get("self_preference", {}),
        "position_png": b64(plots.bars_with_ci(pos_bars, "first-position preference (both orders)",
                                               "rate the first-shown response wins", 0.5, "no position bias"))
        if pos_bars else None,
        "kappa_png": b64(plots.value_heatmap(kappa, judges, datasets, "Cohen's kappa vs reference (order-consistent)",
                                             "dataset", "judge", vmin=-0.2, vmax=1.0)) if judges else None,
    }


def consistency_view(summ: dict[str, Any]) -> dict[str, Any]:
    out = []
    for name, res in summ.get("judging_scores", {}).items():
        item = {"name": name, **res}
        if res.get("generation") and res.get("judging"):
            pts = {m: (res["generation"][m], res["judging"][m]) for m in res["models"]}
            item["png"] = b64(plots.scatter_labelled(pts, summ.get("generation_score", "generation"), name,
                                                     f"GE-consistency: {name}"))
        out.append(item)
    return {"scores": out, "note": summ.get("note")}
