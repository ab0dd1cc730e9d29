"""Peak memory and time of one LoRA training step: transformers' full-logits loss vs judgegap's
target-only loss (judgegap.training.sft.masked_lm_loss), on the same batch of a real model.

Each variant runs in its own process (peak RSS is per process). The batch is judge-sft's shape:
8 right-padded prompts of ~400 tokens with one target token each.

    python benchmarks/train_memory.py [--model smollm2-135m-instruct] [--batch 8] [--length 400]

Variants: ``full`` (transformers' loss), ``target`` (logits at target positions only), and
``target+ckpt`` (plus gradient checkpointing, ``training.gradient_checkpointing: true``). Prints one
line per variant and ``ratio peak RSS full / target-only (MODEL): X.XXx``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one_step(model_name: str, batch: int, length: int, variant: str) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from judgegap.backends.hf import HFBackend
    from judgegap.training.sft import IGNORE, masked_lm_loss

    be = HFBackend(model_name)
    model = get_peft_model(be.model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                task_type="CAUSAL_LM"))
    if variant == "target+ckpt":
        model.enable_input_require_grads()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    torch.manual_seed(0)
    ids = torch.randint(100, 10000, (batch, length))
    att = torch.ones_like(ids)
    labels = torch.full_like(ids, IGNORE)
    for b in range(batch):
        end = length - 7 * b  # right padding of different lengths, one target at each end
        att[b, end:] = 0
        labels[b, end - 1] = ids[b, end - 1]
    inputs = {"input_ids": ids, "attention_mask": att, "labels": labels}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    loss = model(**inputs).loss if variant == "full" else masked_lm_loss(model, inputs)
    loss.backward()
    dt = time.perf_counter() - t0
    return {"variant": variant, "loss": float(loss), "step_seconds": round(dt, 2),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "rss_before_step_gib": round(rss0, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=400)
    ap.add_argument("--variant", choices=["full", "target", "target+ckpt"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.variant:
        print(json.dumps(one_step(a.model, a.batch, a.length, a.variant)))
        return
    res = {}
    for v in ("full", "target", "target+ckpt"):
        out = subprocess.run([sys.executable, __file__, "--model", a.model, "--batch", str(a.batch), "--length",
                              str(a.length), "--variant", v], capture_output=True, text=True, check=True)
        res[v] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{v:>6}: loss {res[v]['loss']:.5f}  step {res[v]['step_seconds']} s  peak RSS {res[v]['peak_rss_gib']} GiB"
              f" (model loaded: {res[v]['rss_before_step_gib']} GiB)")
    print(f"ratio peak RSS full / target-only ({a.model}): {res['full']['peak_rss_gib'] / res['target']['peak_rss_gib']:.2f}x")
    print(f"ratio step time full / target-only ({a.model}): {res['full']['step_seconds'] / res['target']['step_seconds']:.2f}x")
    print(f"ratio peak RSS full / target-only + gradient checkpointing ({a.model}):"
          f" {res['full']['peak_rss_gib'] / res['target+ckpt']['peak_rss_gib']:.2f}x")


if __name__ == "__main__":
    main()
