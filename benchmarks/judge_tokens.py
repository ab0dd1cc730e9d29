"""How many prompt tokens does a self-judgement cost after the prefix it shares with the answer prompt?

    JUDGEGAP_DATA_DIR=../shared/data python benchmarks/judge_tokens.py --n 40

On a KV-cache backend (llamacpp) an item's judge prompt, run right after its answer prompt, evaluates
only the tokens after their longest common token prefix. For each bundled model (its own tokenizer and
chat handling, through the llamacpp backend that runs it) and each judge template: the answer prompt's
length and the mean judge suffix, and their ratio. No generation: token counts only.
"""

from __future__ import annotations

import argparse

import numpy as np

MODELS = {"smollm2-135m-instruct": {}, "qwen2.5-coder-1.5b-instruct": {}, "gemma3-270m": {"chat_template": "never"}}


def main() -> None:
    from judgegap.backends.base import common_prefix_length
    from judgegap.backends.llamacpp import LlamaCppBackend
    from judgegap.data import load_dataset
    from judgegap.prompts import PROMPTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--judges", default="qa_judge@2,qa_judge@3")
    args = ap.parse_args()
    items = load_dataset("squad2", n=args.n, seed=0)
    gen = PROMPTS.get("qa_generate@2")
    print(f"{args.n} SQuAD 2.0 items (seed 0), answer prompt {gen.id}, candidate = the first gold answer")
    print("| model | judge | answer prompt tokens | judge tokens after the reused prefix | ratio |")
    print("|---|---|---|---|---|")
    for model, kw in MODELS.items():
        be = LlamaCppBackend(model, n_ctx=2048, **kw)
        try:
            for jid in args.judges.split(","):
                judge = PROMPTS.get(jid)
                tot, suf = [], []
                for it in items:
                    v = dict(context=it.context, question=it.question, allow_unanswerable=True)
                    g = be.encode(gen.render(**v))
                    j = be.encode(judge.render(candidate=it.answers[0] if it.answers else "unanswerable", **v))
                    tot.append(len(g))
                    suf.append(len(j) - common_prefix_length(g, j))
                print(f"| {model} | {jid} | {np.mean(tot):.1f} | {np.mean(suf):.1f} | {np.mean(suf) / np.mean(tot):.3f} |")
        finally:
            be.close()


if __name__ == "__main__":
    main()
