"""The self-contained HTML report (no network): tables, embedded PNG charts, blind spots.

All model text goes through jinja2 autoescaping.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader
from sklearn.calibration import calibration_curve

from judgegap.report import plots
from judgegap.store import Store

_ENV = Environment(loader=PackageLoader("judgegap.report", "templates"), autoescape=True)  # model text is untrusted


def fmt(e: dict[str, Any] | None, pct: bool = True) -> str:
    if not e:
        return "–"
    v, lo, hi = e.get("value"), e.get("ci_low"), e.get("ci_high")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return f"n/a (n={e.get('n', 0)})"
    k, d = (100, 1) if pct else (1, 3)
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return f"{v * k:.{d}f} (n={e['n']})"
    return f"{v * k:.{d}f} [{lo * k:.{d}f}, {hi * k:.{d}f}] (n={e['n']})"


_ENV.filters["est"] = fmt
_ENV.filters["estr"] = lambda e: fmt(e, pct=False)


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


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


BUILTIN_SECTIONS = ("asymmetry", "pairwise", "ge_consistency", "selfscore", "attention")


def extra_sections(exps: dict[str, Any]) -> list[dict[str, Any]]:
    """Sections for experiments the report does not know (plugins): the experiment's own
    ``report_html(summary)`` if it has one (its output must be escaped by it), else the summary
    as JSON (escaped by the template)."""
    from markupsafe import Markup

    from judgegap.experiments.base import EXPERIMENTS
    from judgegap.store import jsonout

    out = []
    for name, summ in exps.items():
        if name in BUILTIN_SECTIONS:
            continue
        cls = EXPERIMENTS.get(name) if name in EXPERIMENTS else None
        render = getattr(cls, "report_html", None)
        out.append({"name": name, "html": Markup(render(summ)) if render else None,
                    "json": None if render else jsonout.dumps(summ, indent=2)})
    return out


def build_report(store: Store, summary: dict[str, Any], path: Path) -> list[Path]:
    """Write the HTML report; returns the extra files written (figure PNGs)."""
    exps = summary.get("experiments", {})
    from judgegap.report.pairwise_view import consistency_view, pairwise_view
    from judgegap.report.attention_view import attention_view
    from judgegap.report.selfscore_view import selfscore_view

    view = {"title": summary.get("name") or "judgegap report", "summary": summary,
            "asym": asymmetry_view(store, exps["asymmetry"]) if "asymmetry" in exps else None,
            "pairs": pairwise_view(exps["pairwise"]) if "pairwise" in exps else None,
            "ge": consistency_view(exps["ge_consistency"]) if "ge_consistency" in exps else None,
            "selfscore": selfscore_view(exps["selfscore"]) if "selfscore" in exps else None,
            "attention": attention_view(exps["attention"], path.parent / "figures") if "attention" in exps else None}
    view["extra"] = extra_sections(exps)
    from judgegap.report.headline import headline_rows

    view["trust"] = headline_rows(summary)
    html = _ENV.get_template("report.html.jinja2").render(**view)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return list(view["attention"]["written"]) if view["attention"] else []
