"""The drift monitor on real self-scores: a production-style log made from a finished run.

Takes the `selfscore` records of one model in a run directory and writes them as a log a
product would keep (id, timestamp, self_score = expected score, outcome = gold correctness):
the SQuAD 2.0 answers spread over the first days, then the HotpotQA answers on the last day,
as if traffic had shifted from single-passage to multi-hop questions. Then runs
``judgegap monitor`` on it. The SQuAD days against each other are the no-drift control.

    python benchmarks/monitor_real_log.py runs/selfscore_attention --model smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from judgegap.store import Store


def write_log(run_dir: Path, model: str, out: Path, per_day: int = 80) -> dict[str, int]:
    recs = [r for r in Store.in_dir(run_dir).records("selfscore", "scored_answer") if r["model"] == model]
    if not recs:
        sys.exit(f"error: no selfscore records for model {model!r} in {run_dir}")
    t0 = datetime(2026, 11, 2, 8, tzinfo=timezone.utc)
    squad = sorted((r for r in recs if r["dataset"] == "squad2"), key=lambda r: r["item_id"])
    multi = sorted((r for r in recs if r["dataset"] != "squad2"), key=lambda r: r["item_id"])
    lines, days = [], {}
    for i, r in enumerate(squad):
        day = i // per_day
        lines.append((t0 + timedelta(days=day, minutes=5 * (i % per_day)), r))
        days[f"day {day + 1} (squad2)"] = days.get(f"day {day + 1} (squad2)", 0) + 1
    last = (len(squad) - 1) // per_day + 1
    for i, r in enumerate(multi):
        lines.append((t0 + timedelta(days=last, minutes=5 * i), r))
        days[f"day {last + 1} ({r['dataset']})"] = days.get(f"day {last + 1} ({r['dataset']})", 0) + 1
    with out.open("w") as fh:
        for ts, r in lines:
            fh.write(json.dumps({"id": f"{r['dataset']}:{r['item_id']}", "timestamp": ts.isoformat(),
                                 "self_score": r["scores"][model]["expected"], "outcome": r["correct"]}) + "\n")
    return days


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", type=Path, default=None, help="log path (default RUN_DIR/monitor_<model>.jsonl)")
    args = ap.parse_args()
    out = args.out or args.run_dir / f"monitor_{args.model}.jsonl"
    print(json.dumps(write_log(args.run_dir, args.model, out)))
    p = subprocess.run([sys.executable, "-m", "judgegap", "monitor", str(out), "--html",
                        str(out.with_suffix(".html"))], check=False)
    print(f"monitor exit code {p.returncode} (3 = drift flagged)")


if __name__ == "__main__":
    main()
