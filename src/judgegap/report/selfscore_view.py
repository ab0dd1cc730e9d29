"""Report view of the self-score experiment: calibration, top-k agreement, routing curves."""

from __future__ import annotations

from typing import Any

from judgegap.report import plots
from judgegap.report.html import b64


def selfscore_view(summ: dict[str, Any]) -> dict[str, Any]:
    rows, figs = [], []
    for ds, per_model in summ.get("datasets", {}).items():
        rel, hist, rc, cost = {}, {}, {}, {}
        for m, r in per_model.items():
            rows.append({"dataset": ds, "model": m, **r})
            rel[f"{m} (expected)"] = r["vs_gold"]["expected"].get("reliability", [])
            hist[m] = r["score_histogram"]
            c = r["routing"]["curve"]
            rc[m] = (c["coverage"], c["accuracy"])
            cc = r["routing"]["cost"]["curve"]
            cost[m] = (cc["escalation_rate"], cc["cost"])
        figs.append({
            "dataset": ds,
            "reliability": b64(plots.reliability_bins_plot(rel, f"{ds}: self-score reliability (vs gold)")),
            "histogram": b64(plots.histograms(hist, f"{ds}: self-score distribution")),
            "risk_coverage": b64(plots.lines(rc, f"{ds}: accept if self-score >= t", "coverage (accepted fraction)",
                                             "accuracy of accepted answers")),
            "cost": b64(plots.lines(cost, f"{ds}: cost per item (escalation {r['routing']['cost']['escalation_cost']},"
                                          " error 1)", "escalation rate", "expected cost per item", ylim=None)),
        })
    return {"rows": rows, "figs": figs, "comparison": summ.get("comparison", {}),
            "comparison_pair": summ.get("comparison_pair", ""),
            "scale": summ.get("score_scale", "")}
