"""Backend throughput on a real model and real SQuAD 2.0 items, against lm-evaluation-harness.

Prints items/s for: generate-only; judge-only via score_choices (one forward pass);
judge via sampled text; the prefix-reuse saving (three judge prompts per item sharing the
passage, with and without the shared KV prefix); and lm-eval's generate-only on the same
items, prompts, model files and decoding settings. Ratios are what to look at.

    JUDGEGAP_DATA_DIR=../shared/data python benchmarks/backends.py --model smollm2-135m-instruct --n 200

No result cache is involved: every call reaches the model.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from judgegap.backends.base import GenRequest
from judgegap.backends.hf import HFBackend
from judgegap.data import load_dataset
from judgegap.experiments.candidates import balanced_candidates, clean_answer, display_answer
from judgegap.prompts import JUDGE_CHOICES, QA_GENERATE, QA_JUDGE


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def lm_eval_generate(model_dir: Path, prompts: list[str], max_new: int, batch_size: int) -> float:
    """Seconds lm-eval's hf model takes for generate_until on the same rendered prompts."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as td:
        data = Path(td) / "items.jsonl"
        data.write_text("".join(json.dumps({"prompt": p, "target": ""}) + "\n" for p in prompts))
        (Path(td) / "jg_squad.yaml").write_text(
            "task: jg_squad\n"
            "dataset_path: json\n"
            f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
            "test_split: test\n"
            "output_type: generate_until\n"
            "doc_to_text: '{{prompt}}'\n"
            "doc_to_target: '{{target}}'\n"
            "target_delimiter: ''\n"
            f"generation_kwargs:\n  until: [\"\\n\"]\n  max_gen_toks: {max_new}\n  do_sample: false\n"
            "metric_list:\n  - metric: exact_match\n")
        tm = TaskManager(include_path=td)
        t0 = time.perf_counter()
        lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype=float32,device=cpu",
                                tasks=["jg_squad"], task_manager=tm, batch_size=batch_size,
                                apply_chat_template=False)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--chat-template", default="auto")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--lm-eval-batch-sizes", default="1,8")
    ap.add_argument("--skip-lm-eval", action="store_true")
    args = ap.parse_args()

    items = load_dataset("squad2", n=args.n, seed=0)
    be, load_s = timed(lambda: HFBackend(args.model, chat_template=args.chat_template))
    gen_prompts = [QA_GENERATE.render(context=it.context, question=it.question, allow_unanswerable=True)
                   for it in items]
    reqs = [GenRequest(p, max_new_tokens=args.max_new_tokens, stop=("\n",)) for p in gen_prompts]
    comps, t_gen = timed(lambda: be.generate(reqs))
    answers = [display_answer(clean_answer(c.text)) for c in comps]
    self_prompts = [QA_JUDGE.render(context=it.context, question=it.question, candidate=a, allow_unanswerable=True)
                    for it, a in zip(items, answers)]
    _, t_judge_lp = timed(lambda: be.score_choices(self_prompts, list(JUDGE_CHOICES)))
    _, t_judge_txt = timed(lambda: be.generate([GenRequest(p, max_new_tokens=4, stop=("\n",)) for p in self_prompts]))
    # three judge prompts per item (own answer, gold, wrong span) share passage + question
    cands = balanced_candidates(items, "squad2", 0.5, 0)
    grouped = []
    for it, a in zip(items, answers):
        for cand in [a] + [display_answer(clean_answer(t)) for _, t in cands[it.id]]:
            grouped.append(QA_JUDGE.render(context=it.context, question=it.question, candidate=cand,
                                           allow_unanswerable=True))
    be.prefix_sharing = True
    _, t_shared = timed(lambda: be.score_choices(grouped, list(JUDGE_CHOICES)))
    be.prefix_sharing = False
    _, t_unshared = timed(lambda: be.score_choices(grouped, list(JUDGE_CHOICES)))
    be.prefix_sharing = True

    n = len(items)
    res = {
        "model": args.model, "n_items": n, "max_new_tokens": args.max_new_tokens, "load_s": round(load_s, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''} threads={__import__('torch').get_num_threads()}",
        "generate_items_per_s": n / t_gen,
        "judge_logprob_items_per_s": n / t_judge_lp,
        "judge_text_items_per_s": n / t_judge_txt,
        "judge3_shared_prefix_s": t_shared, "judge3_no_prefix_s": t_unshared,
        "prefix_reuse_speedup": t_unshared / t_shared,
        "logprob_vs_text_judge_speedup": t_judge_txt / t_judge_lp,
        "generate_plus_judge_items_per_s": n / (t_gen + t_judge_lp),
    }
    if not args.skip_lm_eval:
        from judgegap.backends.models import converted_dir

        model_dir = Path(be.source["path"]) if be.source["kind"] == "dir" else converted_dir(
            Path(be.source["path"]), be.source_fp)
        rendered = [be.render(p) for p in gen_prompts]
        for bs in [int(x) for x in args.lm_eval_batch_sizes.split(",")]:
            t = lm_eval_generate(model_dir, rendered, args.max_new_tokens, bs)
            res[f"lm_eval_generate_bs{bs}_items_per_s"] = n / t
        best = max(v for k, v in res.items() if k.startswith("lm_eval_generate_bs"))
        res["ratio_generate_vs_lm_eval"] = res["generate_items_per_s"] / best
        res["ratio_generate_plus_judge_vs_lm_eval_generate_only"] = res["generate_plus_judge_items_per_s"] / best
    for k, v in res.items():
        print(f"{k:55s} {v:.3f}" if isinstance(v, float) else f"{k:55s} {v}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
