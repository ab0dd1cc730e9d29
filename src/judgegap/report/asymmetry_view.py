"""Report view of the asymmetry experiment: bars, judge-by-author heatmaps, reliability, blind spots."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve

from judgegap.report import plots
from judgegap.report.html import b64
from judgegap.store import Store


def asymmetry_view(store: Store, summ: dict[str, Any]) -> dict[str, Any]:
    gens = store.records("asymmetry", "generation")
    judg = store.records("asymmetry", "judgment")
    gindex = {(g["dataset"], g["model"], g["item_id"]): g for g in gens}
    self_index = {(r["dataset"], r["judge"], r["item_id"]): r for r in judg if r["judge"] == r["author"]}
    bars, headline, heatmaps, reliab, blind = [], [], [], [], []
    for ds, d in summ["datasets"].items():
        for m, ms in d["models"].items():
            bars.append({"label": f"{ds}\n{m}", "series": {
                "generation (F1≥τ)": ms["generation"]["accuracy"],
                "self-judge (own answers)": ms.get("self_judge", {}).get("accuracy"),
                "judge accuracy (balanced set)": ms.get("balanced_set", {}).get("accuracy"),
                "judge J = TPR+TNR−1 (balanced set)": ms.get("balanced_set", {}).get("youden_j"),
            }})
            headline.append({"dataset": ds, "model": m, **ms})
            for iid in ms.get("blind_spots", []):
                g = gindex.get((ds, m, iid))
                j = self_index.get((ds, m, iid))
                if g and j:
                    blind.append({"dataset": ds, "model": m, "item_id": iid, "question": g.get("question", ""),
                                  "context": g.get("context", ""), "gold": g.get("gold", ""),
                                  "answer": g["raw_text"], "f1": g["f1"], "p_correct": j["p_correct"],
                                  "text_reply": j.get("text_reply") or ""})
        judges = list(d["matrix"])
        authors = sorted({a for row in d["matrix"].values() for a in row})
        if judges and authors:
            mat = [[(d["matrix"][j].get(a) or {}).get("accuracy", {}).get("value", np.nan) for a in authors]
                   for j in judges]
            heatmaps.append({"dataset": ds, "png": b64(plots.heatmap(mat, judges, authors,
                                                                        f"{ds}: judge accuracy by author")),
                             "judges": judges, "authors": authors, "matrix": d["matrix"]})
        curves = {}
        for m in d["models"]:
            rs = [r for r in judg if r["dataset"] == ds and r["judge"] == m and r["author"] == m]
            y = np.array([r["label"] for r in rs])
            if len(rs) >= 5 and 0 < y.sum() < len(y):
                pt, pp = calibration_curve(y, np.array([r["p_correct"] for r in rs]), n_bins=5, strategy="quantile")
                curves[m] = (pp, pt)
        if curves:
            reliab.append({"dataset": ds, "png": b64(plots.reliability(curves, f"{ds}: self-judge reliability"))})
    return {"bars_png": b64(plots.bar_gen_vs_judge(bars)) if bars else None, "headline": headline,
            "heatmaps": heatmaps, "reliability": reliab, "blind_spots": blind,
            "verdict_basis": summ.get("verdict_basis", ""), "f1_threshold": summ.get("f1_threshold")}
