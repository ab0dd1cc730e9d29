"""Do the headline numbers move when the prompt templates change? Two finished runs, paired by item.

    python benchmarks/template_versions.py runs/critique_small runs/templates_v3_small

Both runs must have run ``asymmetry`` on the same items (same dataset, n and seed) with the same
model names; they differ in their templates (read from each run's stored config). For every dataset and
model present in both: generation accuracy, Youden's J on its own answers and on the balanced gold /
wrong-span set, the self-judge AUROC and the accept rate of its own wrong answers, for run A, run B
and B - A with a paired bootstrap 95% CI -- the same function (``judgegap.training.transfer``) that
compares a tuned model with its base. No model is called.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from judgegap.metrics.bootstrap import Estimate
from judgegap.store import Store
from judgegap.training.transfer import MEASURES, transfer_matrix

LABELS = {"gen_accuracy": "generation accuracy", "judge_j_own": "J own answers", "judge_j_balanced": "J balanced",
          "auroc_own": "self-judge AUROC", "accept_wrong_own": "accepts own wrong"}


def _records(run: Path) -> tuple[list[dict], list[dict], str]:
    """Asymmetry's generation and judgment records, and its templates from the run's stored config
    (readable while a later experiment of that run is still going)."""
    if not (run / Store.FILENAME).is_file():
        raise SystemExit(f"error: {run}: no {Store.FILENAME} (not a judgegap run directory)")
    st = Store.in_dir(run)
    try:
        last = st.last_run() or {}
        templates = "?"
        for e in last.get("config", {}).get("experiments", []):
            if isinstance(e, dict) and e.get("name") == "asymmetry":
                p = e.get("params", {})
                templates = f"{p.get('generate_template', 'default')} / {p.get('judge_template', 'default')}"
        return st.records("asymmetry", "generation"), st.records("asymmetry", "judgment"), templates
    finally:
        st.close()


def _fmt(e: Estimate) -> str:
    if math.isnan(e.value):
        return "–"
    return f"{e.value:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    (ga, ja, ta), (gb, jb, tb) = _records(args.run_a), _records(args.run_b)
    models = sorted({r["model"] for r in ga} & {r["model"] for r in gb})
    if not models:
        raise SystemExit(f"error: {args.run_a} and {args.run_b} share no asymmetry model")
    print(f"A = {args.run_a} ({ta}); B = {args.run_b} ({tb})")
    print("| dataset | model | n | measure | A | B | B − A (paired) | moved beyond CI |")
    print("|---|---|---|---|---|---|---|---|")
    for m in models:
        tag = {"a": f"{m}#A", "b": f"{m}#B"}

        def rename(recs, key, t):
            return [{**r, key: t} for r in recs if r[key] == m]

        gens = rename(ga, "model", tag["a"]) + rename(gb, "model", tag["b"])
        # own answers: judge == author == m; the balanced set: author gold / wrong_span
        judgs = []
        for recs, t in ((ja, tag["a"]), (jb, tag["b"])):
            for r in recs:
                if r["judge"] != m or r["author"] not in (m, "gold", "wrong_span"):
                    continue
                judgs.append({**r, "judge": t, "author": t if r["author"] == m else r["author"]})
        matrix = transfer_matrix(gens, judgs, tag["a"], tag["b"], resamples=args.resamples)
        for ds, row in matrix.items():
            for meas in MEASURES:
                a, b, d = (Estimate.from_dict(row[meas][k]) for k in ("base", "tuned", "diff"))
                moved = "–" if math.isnan(d.value) else ("yes" if d.ci_low > 0 or d.ci_high < 0 else "no")
                print(f"| {ds} | {m} | {row['n_items']} | {LABELS[meas]} | {_fmt(a)} | {_fmt(b)} | {_fmt(d)} | {moved} |")


if __name__ == "__main__":
    main()
