"""Load time, memory and seconds per item for each built-in real model (one process per model).

For every installed built-in model: load it by its short name (first load de-quantises the GGUF and
caches the result; the second load is timed separately), answer SQuAD 2.0 items, judge each answer in
one log-prob pass, and report peak RSS. Prints one JSON line per model and a table. Times are wall
seconds and process CPU seconds (user + system, all threads): on a shared machine the CPU seconds are
the robust number (wall ~ CPU / cores when the machine is otherwise idle).

    JUDGEGAP_DATA_DIR=../shared/data python benchmarks/models_load.py --n 5
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(name: str, n: int) -> dict:
    from judgegap.backends.base import GenRequest
    from judgegap.backends.hf import HFBackend
    from judgegap.data import load_dataset
    from judgegap.experiments.candidates import clean_answer, display_answer
    from judgegap.metrics.qa import score_item
    from judgegap.prompts import JUDGE_CHOICES, QA_GENERATE, QA_JUDGE

    items = load_dataset("squad2", n=n, seed=0, answerable=True)
    t0 = time.perf_counter()
    be = HFBackend(name)
    load_first = time.perf_counter() - t0
    del be
    t0 = time.perf_counter()
    be = HFBackend(name)
    load_cached = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), cpu()
    comps = [be.generate([GenRequest(QA_GENERATE.render(context=it.context, question=it.question,
                                                        allow_unanswerable=False), max_new_tokens=16)])[0]
             for it in items]
    gen_s, gen_cpu = (time.perf_counter() - t0) / n, (cpu() - c0) / n
    preds = [clean_answer(c.text) for c in comps]
    t0, c0 = time.perf_counter(), cpu()
    lps = [be.score_choices([QA_JUDGE.render(context=it.context, question=it.question, candidate=display_answer(p),
                                             allow_unanswerable=False)], list(JUDGE_CHOICES))[0]
           for it, p in zip(items, preds)]
    judge_s, judge_cpu = (time.perf_counter() - t0) / n, (cpu() - c0) / n
    f1 = [score_item("squad2", p, it)[1] for p, it in zip(preds, items)]
    return {"model": name, "load_first_s": round(load_first, 1), "load_cached_s": round(load_cached, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "generate_s_per_item": round(gen_s, 2), "judge_s_per_item": round(judge_s, 2),
            "generate_cpu_s_per_item": round(gen_cpu, 2), "judge_cpu_s_per_item": round(judge_cpu, 2), "n": n,
            "n_answer_tokens": [c.n_tokens for c in comps],
            "mean_f1": round(sum(f1) / n, 3), "example": {"question": items[0].question, "answer": preds[0],
                                                          "gold": items[0].answers[0], "lp_yes_no": lps[0]}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--model", action="append", help="one model (internal); default: all built-ins")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure(a.one, a.n)))
        return
    from judgegap.backends.models import BUILTIN_MODELS

    rows = []
    for name in a.model or list(BUILTIN_MODELS):
        p = subprocess.run([sys.executable, __file__, "--one", name, "--n", str(a.n)], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"{name}: FAILED: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
            continue
        row = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| model | first load (s) | cached load (s) | peak RSS (MiB) | generate s/item (CPU s) |"
          " judge s/item (CPU s) | mean F1 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['load_first_s']} | {r['load_cached_s']} | {r['peak_rss_mib']} |"
              f" {r['generate_s_per_item']} ({r['generate_cpu_s_per_item']}) | {r['judge_s_per_item']}"
              f" ({r['judge_cpu_s_per_item']}) | {r['mean_f1']} (n={r['n']}) |")


if __name__ == "__main__":
    main()
