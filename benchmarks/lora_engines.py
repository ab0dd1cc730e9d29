"""A LoRA adapter on llama.cpp vs transformers (issue #15 / #16): same effect, and what it costs.

    python benchmarks/lora_engines.py                               # SmolLM2, 12 SQuAD judge prompts
    python benchmarks/lora_engines.py --model gemma3-270m --std 0.05
    python benchmarks/lora_engines.py --model qwen2.5-coder-1.5b-instruct --std 0.05 --items 4

Builds a LoRA (r 16, alpha 32, every linear layer, as ``judgegap train`` does) on the model as
transformers loads its GGUF, with random B (``--std``) so the adapter moves log-probabilities by
nats, saves it as a PEFT adapter, and scores the same judge prompts (real SQuAD 2.0 passages, the
" Yes" / " No" verdict, ``qa_judge@2``) four ways: transformers base, transformers with the adapter
merged (what ``backend: hf`` + ``adapter:`` does), llama.cpp base, llama.cpp with the adapter applied
(``backend: llamacpp`` + ``adapter:``). Prints the adapter's effect (tuned − base log-probability)
under each engine, their relative difference, and seconds per prompt (transformers batched, llama.cpp
one prompt at a time, each engine's own way) with ratios: llama.cpp + LoRA vs llama.cpp base (the cost
of an unmerged adapter) and transformers + merged adapter vs llama.cpp + LoRA.
Needs peft (the train extra) and xllamacpp; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--std", type=float, default=0.3, help="std of the random LoRA B weights")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--data-dir", default=os.environ.get("JUDGEGAP_DATA_DIR"))
    args = ap.parse_args()

    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    from judgegap.backends.hf import HFBackend
    from judgegap.backends.llamacpp import LlamaCppBackend
    from judgegap.data import load_dataset
    from judgegap.prompts import JUDGE_CHOICES, PROMPTS

    items = load_dataset("squad2", data_dir=args.data_dir, n=args.items, seed=0, answerable=True)
    judge = PROMPTS.get("qa_judge@2")
    prompts = [judge.render(context=it.context, question=it.question, candidate=it.answers[0],
                            allow_unanswerable=False) for it in items]
    choices = list(JUDGE_CHOICES)

    def timed(be, batched: bool) -> tuple[np.ndarray, float]:
        """Scores and seconds per prompt: transformers batched (its own way), llama.cpp one prompt at a
        time (its way: one sequence, the KV state of the last prompt kept)."""
        be.score_choices(prompts[:1], choices)  # warm-up (and llama.cpp's first allocation)
        t0 = time.perf_counter()
        out = np.array(be.score_choices(prompts, choices) if batched else
                       [be.score_choices([p], choices)[0] for p in prompts])
        return out, (time.perf_counter() - t0) / len(prompts)

    torch.manual_seed(0)
    res: dict[str, tuple[np.ndarray, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / "adapter"
        hf = HFBackend(args.model)
        res["hf"] = timed(hf, True)
        peft_model = get_peft_model(hf.model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                         task_type="CAUSAL_LM"))
        with torch.no_grad():
            for n, w in peft_model.named_parameters():
                if "lora_B" in n:
                    w.normal_(0.0, args.std)
        peft_model.save_pretrained(str(adapter))
        del hf, peft_model
        hf_tuned = HFBackend(args.model, adapter=str(adapter))  # merged at load: what backend hf runs
        res["hf+lora"] = timed(hf_tuned, True)
        del hf_tuned
        os.environ.setdefault("JUDGEGAP_CACHE_DIR", tmp)  # the converted LoRA file goes to a scratch cache
        for name, extra in (("llama.cpp", {}), ("llama.cpp+lora", {"adapter": str(adapter)})):
            be = LlamaCppBackend(args.model, n_threads=args.threads, **extra)
            res[name] = timed(be, False)
            be.close()
    eff_hf = res["hf+lora"][0] - res["hf"][0]
    eff_l = res["llama.cpp+lora"][0] - res["llama.cpp"][0]
    out = {
        "model": args.model, "prompts": len(prompts), "lora": {"r": 16, "alpha": 32, "b_std": args.std},
        "max_abs_effect_hf": round(float(np.abs(eff_hf).max()), 3),
        "effect_relative_difference": round(float(np.linalg.norm(eff_l - eff_hf) / np.linalg.norm(eff_hf)), 4),
        "max_abs_tuned_difference": round(float(np.abs(res["llama.cpp+lora"][0] - res["hf+lora"][0]).max()), 3),
        "max_abs_base_difference": round(float(np.abs(res["llama.cpp"][0] - res["hf"][0]).max()), 3),
        "verdicts_agree_tuned": int(np.sum(np.sign(np.diff(res["llama.cpp+lora"][0], axis=1))
                                           == np.sign(np.diff(res["hf+lora"][0], axis=1)))),
        "seconds_per_prompt": {k: round(v[1], 3) for k, v in res.items()},
        "ratio_llamacpp_lora_over_llamacpp": round(res["llama.cpp+lora"][1] / res["llama.cpp"][1], 2),
        "ratio_hf_lora_over_llamacpp_lora": round(res["hf+lora"][1] / res["llama.cpp+lora"][1], 2),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
