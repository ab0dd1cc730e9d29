"""The built-in experiments' report sections.

An experiment names its section with ``report_section = "module:function"`` (resolved only when
a report is built, so experiments never import the report at module level); the report renders
the sections of the experiments a run has, in config order. A section function takes a
:class:`SectionContext` and returns a :class:`Section` (escaped HTML and any files it wrote).
Plugin experiments do the same, or give ``report_html(summary)``; otherwise their summary is
shown as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from judgegap.report.html import _ENV


@dataclass
class SectionContext:
    store: Any  # judgegap.store.Store, read-only
    summary: dict[str, Any]  # the whole run summary
    experiment: dict[str, Any]  # this experiment's summary
    out_dir: Path  # where the report is written (figures go below it)


@dataclass
class Section:
    name: str
    html: Markup
    files: list[Path] = field(default_factory=list)


def _render(template: str, **values: Any) -> Markup:
    return Markup(_ENV.get_template(template).render(**values))


def asymmetry(ctx: SectionContext) -> Section:
    from judgegap.report.asymmetry_view import asymmetry_view

    return Section("asymmetry", _render("asymmetry.html.jinja2", asym=asymmetry_view(ctx.store, ctx.experiment),
                                        summary=ctx.summary))


def pairwise(ctx: SectionContext) -> Section:
    from judgegap.report.pairwise_view import pairwise_view

    return Section("pairwise", _render("pairwise.html.jinja2", pairs=pairwise_view(ctx.experiment),
                                       summary=ctx.summary))


def ge_consistency(ctx: SectionContext) -> Section:
    from judgegap.report.pairwise_view import consistency_view

    return Section("ge_consistency", _render("consistency.html.jinja2", ge=consistency_view(ctx.experiment),
                                             summary=ctx.summary))


def selfscore(ctx: SectionContext) -> Section:
    from judgegap.report.selfscore_view import selfscore_view

    return Section("selfscore", _render("selfscore.html.jinja2", selfscore=selfscore_view(ctx.experiment),
                                        summary=ctx.summary))


def attention(ctx: SectionContext) -> Section:
    from judgegap.report.attention_view import attention_view

    view = attention_view(ctx.experiment, ctx.out_dir / "figures")
    return Section("attention", _render("attention.html.jinja2", attention=view, summary=ctx.summary),
                   list(view["written"]))


def self_agreement(ctx: SectionContext) -> Section:
    rows = []
    for ds, per_judge in ctx.experiment.get("datasets", {}).items():
        for judge, groups in per_judge.items():
            for group in ("own", "others"):
                g = groups.get(group, {})
                if g.get("n"):
                    rows.append({"dataset": ds, "judge": judge, "group": group, **g})
    return Section("self_agreement", _render("self_agreement.html.jinja2", rows=rows,
                                             definitions=ctx.experiment.get("definitions", {})))


def fallback(name: str, cls: Any, experiment: dict[str, Any]) -> Section:
    """A plugin experiment without a section function: its ``report_html`` (it escapes its own
    output) or its summary as escaped JSON."""
    from markupsafe import escape

    from judgegap.store import jsonout

    render = getattr(cls, "report_html", None)
    body = Markup(render(experiment)) if render else Markup(f'<pre class="note">{escape(jsonout.dumps(experiment, indent=2))}</pre>')
    return Section(name, Markup(f'<h2 id="exp-{escape(name)}">{escape(name)}</h2>\n') + body)
