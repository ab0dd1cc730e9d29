"""Report section of the alternatives experiment: seed 004's claim first, then, per dataset and
judge, its own answers judged alone vs among alternatives (accept rates on its wrong and right
answers, J, pick accuracy, position consistency)."""

from __future__ import annotations

from typing import Any

from judgegap.report.sections import Section, SectionContext, _render


def alternatives_view(summ: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for ds, per_judge in summ.get("datasets", {}).items():
        for judge, c in per_judge.items():
            if not c.get("n"):
                continue
            rows.append({"dataset": ds, "judge": judge, **c})
    return {"rows": rows, "readings": summ.get("readings", []), "definitions": summ.get("definitions", {})}


def section(ctx: SectionContext) -> Section:
    return Section("alternatives", _render("alternatives.html.jinja2", alt=alternatives_view(ctx.experiment)))
