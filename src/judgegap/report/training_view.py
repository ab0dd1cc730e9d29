"""Self-contained HTML page for ``judgegap train``: the loss curve, the transfer matrix, the reading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgegap.report import plots
from judgegap.report.html import _ENV, b64


# per online method: the rounds section's title and the per-round means drawn as curves
ROUND_VIEWS = {
    "see": ("policy step + MJD step", ("reward", "quality", "calibration", "format_ok")),
    "serl": ("policy step rewarded by the model's own consistent pairwise judgement",
             ("reward", "quality", "consistency", "agrees_with_metric")),
}


def build_training_report(summary: dict[str, Any], path: Path) -> None:
    from judgegap.training.transfer import MEASURES, SELFSCORE_MEASURES

    t = summary["training"]
    loss = t.get("loss") or []
    png = b64(plots.lines({"loss": ([r["step"] for r in loss], [r["loss"] for r in loss])}, "training loss",
                          "optimizer step", "loss (target tokens only)", ylim=None)) if loss else None
    rounds = t.get("rounds") or []
    probe_png = None
    if rounds and any(r.get("probe_ece") is not None for r in rounds):
        before = t.get("probe_before") or {}
        pts = ([{"round": -1, **before}] if before else []) + rounds
        probe_png = b64(plots.lines({k: ([r["round"] for r in pts if r.get(f"probe_{k}") is not None],
                                         [r[f"probe_{k}"] for r in pts if r.get(f"probe_{k}") is not None])
                                     for k in ("ece", "brier", "auroc", "accuracy")},
                                    f"held-out probe (n={rounds[-1].get('probe_n')}): self-score calibration per round",
                                    "round (-1 = before training)", "value", ylim=None, integer_x=True))
    cfg = summary["config"]
    title, curves = ROUND_VIEWS.get(cfg["method"]["name"], ("per round", ("reward",)))
    round_cols = [k for k in rounds[0] if k != "round"] if rounds else []
    rounds_png = b64(plots.lines({k: ([r["round"] for r in rounds if r.get(k) is not None],
                                      [r[k] for r in rounds if r.get(k) is not None]) for k in curves},
                                 f"{cfg['method']['name']}: per-round means", "round", "value",
                                 ylim=None, integer_x=True)) if rounds else None
    ev = summary.get("evaluation") or {}
    html = _ENV.get_template("training.html.jinja2").render(
        name=cfg["name"], method=cfg["method"]["name"], base=cfg["model"]["model"], t=t, ex=summary["examples"],
        skipped=summary["skipped_too_long"], split=summary["split"], seed=cfg["seed"], loss_png=png,
        transfer=ev.get("transfer"), reading=ev.get("reading", []), measures=MEASURES,
        selfscore=ev.get("selfscore_transfer"), ss_measures=SELFSCORE_MEASURES, rounds=rounds, rounds_png=rounds_png,
        rounds_title=title, round_cols=["round", *round_cols], probe_png=probe_png)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
