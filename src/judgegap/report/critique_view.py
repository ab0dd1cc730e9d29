"""Report section of the critique experiment: the seed-004 readings first, then the protocol table
(round 0 vs round R per track), accuracy curves over rounds, and the flip matrices."""

from __future__ import annotations

from typing import Any

from judgegap.report import plots
from judgegap.report.html import b64
from judgegap.report.sections import Section, SectionContext, _render


def critique_view(summ: dict[str, Any], fig_dir: Any = None) -> dict[str, Any]:
    datasets, written = [], []
    for ds, d in summ.get("datasets", {}).items():
        curves, flips = [], []
        for proto, groups in d.get("protocols", {}).items():
            series = {}
            for group, tracks in groups.items():
                for track, s in tracks.items():
                    xs = [r["round"] for r in s["rounds"]]
                    series[f"{group} · {track}" if track != group else group] = (
                        xs, [r["accuracy"]["value"] for r in s["rounds"]])
                    flips.append({"protocol": proto, "group": group, "track": track,
                                  "rounds": s["rounds"][-1]["round"], **s["flip_matrix_final"]})
            png = plots.lines(series, f"{ds} · {proto}: accuracy by round", "round", "accuracy", integer_x=True)
            if fig_dir is not None:
                fig_dir.mkdir(parents=True, exist_ok=True)
                path = fig_dir / f"critique_{ds}_{proto}.png".replace("/", "_")
                path.write_bytes(png)
                written.append(path)
            curves.append({"protocol": proto, "png": b64(png)})
        datasets.append({"name": ds, "comparison": d.get("comparison", []), "curves": curves, "flips": flips})
    return {"datasets": datasets, "readings": summ.get("readings", []), "rounds": summ.get("rounds"),
            "definitions": summ.get("definitions", {}), "written": written}


def section(ctx: SectionContext) -> Section:
    from judgegap.experiments.critique_summary import seed004_claims

    view = critique_view(ctx.experiment, ctx.out_dir / "figures")
    view["other_claims"] = seed004_claims(ctx.summary)
    return Section("critique", _render("critique.html.jinja2", crit=view), list(view["written"]))
