"""What the critique experiment's call order costs on llama.cpp: the same run in each ``order``, fresh caches.

    JUDGEGAP_DATA_DIR=../shared/data python benchmarks/critique_order.py --n 3
    JUDGEGAP_DATA_DIR=../shared/data python benchmarks/critique_order.py --n 3 --orders item model

Runs the ``critique`` experiment (default: all four protocols, R = 2, 3 sampled copies, Qwen2.5-Coder-1.5B as
the author and SmolLM2-135M as the other model, ``qa_generate@2`` / ``qa_judge@2``) on the first N items of a QA
set once per order, each with an empty call cache of its own, and prints per order: wall time, requests,
prompt tokens submitted and actually evaluated per model (llama.cpp reuses the longest prefix shared with the
previous prompt), and the ratios against the first order. ``item`` is what llama.cpp gets by default
(``order: auto``); ``model`` batches each phase of a round across items. The answers of the two orders are
compared turn by turn: llama.cpp is not batch-invariant (a suffix evaluated after a reused prefix differs
slightly from the whole prompt at once), so a few may differ; the count is printed, not assumed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import judgegap as jg
from judgegap.store import Store

AUTHOR = {"name": "qwen2.5-coder-1.5b", "backend": "llamacpp", "model": "qwen2.5-coder-1.5b-instruct",
          "generation": {"max_new_tokens": 16}}
OTHER = {"name": "smollm2-135m", "backend": "llamacpp", "model": "smollm2-135m-instruct",
         "generation": {"max_new_tokens": 16}}


def run_once(order: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    cfg = {"name": f"critique-order-{order}", "seed": 0, "output_dir": str(tmp / f"out-{order}"),
           "call_cache": str(tmp / f"calls-{order}.sqlite"), "bootstrap_resamples": 200,
           "datasets": [{"name": args.dataset, "n": args.n, "seed": 0}], "models": [AUTHOR, OTHER],
           "experiments": [{"name": "critique", "params": {
               "protocols": args.protocols, "rounds": args.rounds, "copies": 3, "authors": [AUTHOR["name"]],
               "generate_template": "qa_generate@2", "judge_template": "qa_judge@2", "order": order}}]}
    t0 = time.perf_counter()
    res = jg.run(cfg)
    wall = time.perf_counter() - t0
    st = Store.in_dir(res.output_dir)
    turns = {(r["protocol"], r["group"], r["agent"], r["round"], r["item_id"]): r["prediction"]
             for r in st.records("critique", "turn")}
    st.close()
    return {"order": order, "wall_s": wall, "backends": res.summary["run"]["backends"], "turns": turns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3, help="items (default 3)")
    ap.add_argument("--dataset", default="hotpotqa")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--protocols", nargs="+", default=["self-revise", "cross-critique", "debate", "same-model-debate"])
    ap.add_argument("--orders", nargs="+", default=["item", "model"], choices=["item", "model"])
    args = ap.parse_args()
    print(f"judgegap {jg.__version__} from {Path(jg.__file__).parent}; {args.dataset}, n = {args.n}, R = {args.rounds},"
          f" protocols: {', '.join(args.protocols)}")
    with tempfile.TemporaryDirectory() as d:
        results = [run_once(o, args, Path(d)) for o in args.orders]
    base = results[0]
    print("\n| order | wall s | model | requests | prompt tokens submitted | evaluated | reuse |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        for name, b in r["backends"].items():
            print(f"| {r['order']} | {r['wall_s']:.0f} | {name} | {b['requests']} | {b['prompt_tokens_submitted']:,} |"
                  f" {b['prompt_tokens_evaluated']:,} | {b['prefix_reuse']:.1%} |")
    ev0 = sum(b["prompt_tokens_evaluated"] for b in base["backends"].values())
    for r in results[1:]:
        ev = sum(b["prompt_tokens_evaluated"] for b in r["backends"].values())
        same = sum(r["turns"].get(k) == v for k, v in base["turns"].items())
        print(f"\n{r['order']} / {base['order']}: wall {r['wall_s'] / base['wall_s']:.2f}x, prompt tokens evaluated"
              f" {ev / ev0:.2f}x; same answer in {same} of {len(base['turns'])} turns")


if __name__ == "__main__":
    main()
