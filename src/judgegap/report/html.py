"""The self-contained HTML report (no network): the trust headline, then each experiment's own
section (judgegap.report.sections), in the order the run has them.

All model text goes through jinja2 autoescaping.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader

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


def resolve_section(ref: str) -> Any:
    """``module:function`` -> the function (imported when a report is built)."""
    import importlib

    module, _, fn = ref.partition(":")
    return getattr(importlib.import_module(module), fn)


def sections(store: Store, summary: dict[str, Any], out_dir: Path) -> list[Any]:
    """Each experiment's section, in the order the run has them; the report knows no experiment."""
    from judgegap.experiments.base import EXPERIMENTS
    from judgegap.report.sections import SectionContext, fallback

    out = []
    for name, summ in summary.get("experiments", {}).items():
        cls = EXPERIMENTS.get(name) if name in EXPERIMENTS else None
        ref = getattr(cls, "report_section", None)
        if ref:
            out.append(resolve_section(ref)(SectionContext(store, summary, summ, out_dir)))
        else:
            out.append(fallback(name, cls, summ))
    return out


def build_report(store: Store, summary: dict[str, Any], path: Path) -> list[Path]:
    """Write the HTML report; returns the extra files written (figure PNGs)."""
    from judgegap.report.headline import headline_rows

    secs = sections(store, summary, path.parent)
    view = {"title": summary.get("name") or "judgegap report", "summary": summary, "sections": secs,
            "trust": headline_rows(summary)}
    html = _ENV.get_template("report.html.jinja2").render(**view)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return [f for s in secs for f in s.files]
