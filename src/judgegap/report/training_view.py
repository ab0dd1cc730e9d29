"""Self-contained HTML page for ``judgegap train``: the loss curve, the transfer matrix, the reading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgegap.report import plots
from judgegap.report.html import _ENV, b64


def build_training_report(summary: dict[str, Any], path: Path) -> None:
    from judgegap.training.transfer import MEASURES, SELFSCORE_MEASURES

    t = summary["training"]
    loss = t.get("loss") or []
    png = b64(plots.lines({"loss": ([r["step"] for r in loss], [r["loss"] for r in loss])}, "training loss",
                          "optimizer step", "loss (target tokens only)", ylim=None)) if loss else None
    rounds = t.get("rounds") or []
    rounds_png = b64(plots.lines({k: ([r["round"] for r in rounds], [r[k] for r in rounds])
                                  for k in ("reward", "quality", "calibration", "format_ok")},
                                 "SEE: reward parts per round (means over the round's samples)", "round", "value",
                                 ylim=None, integer_x=True)) if rounds else None
    cfg = summary["config"]
    ev = summary.get("evaluation") or {}
    html = _ENV.get_template("training.html.jinja2").render(
        name=cfg["name"], method=cfg["method"]["name"], base=cfg["model"]["model"], t=t, ex=summary["examples"],
        skipped=summary["skipped_too_long"], split=summary["split"], seed=cfg["seed"], loss_png=png,
        transfer=ev.get("transfer"), reading=ev.get("reading", []), measures=MEASURES,
        selfscore=ev.get("selfscore_transfer"), ss_measures=SELFSCORE_MEASURES, rounds=rounds, rounds_png=rounds_png)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
