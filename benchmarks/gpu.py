"""The GPU path (issue #15): random-weight models of real architectures on CUDA in bf16.

    python benchmarks/gpu.py                        # Qwen2.5-0.5B and 1.5B configs, batch 1/8/64/max
    python benchmarks/gpu.py --arch qwen2.5-1.5b --batches 1,8,64,256 --prompt-len 512 --new 64

Nothing is downloaded: each model is built from its published config (layers, widths, heads,
vocabulary) with random weights, which is all throughput depends on. For each batch size it
measures, with CUDA events after a warm-up:

- prefill tokens/s (one forward over ``batch x prompt_len`` tokens) and its fraction of the GPU's
  dense bf16 peak (2 x parameters x tokens FLOPs per forward, attention FLOPs added);
- decode tokens/s (``new`` greedy steps with the KV cache) and its fraction of the memory-bandwidth
  roofline (each step must read every weight once plus the KV cache so far);
- judgegap's own ``hf`` backend on the same weights: ``score_choices`` (one-pass verdicts) and
  ``generate`` items/s, with the batch budget it chose from total GPU memory (recorded).

Peaks are looked up from the device name (H100 SXM/PCIe, H200, A100); pass --peak-tflops and
--peak-tbps for others. Without a CUDA device the script says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ARCHS = {
    # published Qwen2.5 configs (hidden, intermediate, layers, heads, kv heads, vocab, tied embeddings)
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
}
PEAKS = {  # dense bf16 TFLOPS, memory TB/s
    "H100 80GB HBM3": (989.0, 3.35), "H100 PCIe": (756.0, 2.0), "H100 NVL": (835.0, 3.9),
    "H200": (989.0, 4.8), "A100-SXM4-80GB": (312.0, 2.04), "A100-SXM4-40GB": (312.0, 1.56),
    "A100-PCIE-40GB": (312.0, 1.56), "A100 80GB PCIe": (312.0, 1.94),
}


def peaks(name: str, tflops: float | None, tbps: float | None) -> tuple[float, float]:
    if tflops and tbps:
        return tflops, tbps
    for key, val in PEAKS.items():
        if key in name:
            return val
    raise SystemExit(f"unknown GPU {name!r}: pass --peak-tflops and --peak-tbps")


def build(arch: str, path: Path):
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from tokenizers import Tokenizer, models, pre_tokenizers

    cfg = Qwen2Config(**ARCHS[arch], max_position_embeddings=32768, torch_dtype="bfloat16")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    # a byte-level tokenizer with the model's vocabulary size (ids only matter for throughput)
    vocab = {f"<{i}>": i for i in range(cfg.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<0>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<1>", pad_token="<2>")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return model, cfg


def timed(fn, reps: int = 3) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / 1000)
    return best


def raw_model(model, cfg, batches: list[int], prompt_len: int, new: int, tflops: float, tbps: float) -> list[dict]:
    import torch

    n_params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    kv_per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 2
    rows = []
    for b in batches:
        ids = torch.randint(10, cfg.vocab_size, (b, prompt_len), device="cuda")
        try:
            with torch.inference_mode():
                t_pre = timed(lambda: model(ids, use_cache=False))
                t_gen = timed(lambda: model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False),
                              reps=1)
        except torch.cuda.OutOfMemoryError:
            rows.append({"batch": b, "oom": True})
            torch.cuda.empty_cache()
            continue
        attn_flops = 4 * cfg.num_hidden_layers * cfg.hidden_size * prompt_len * prompt_len * b / 2
        pre_flops = 2 * n_params * b * prompt_len + attn_flops
        t_dec = max(t_gen - t_pre, 1e-9)
        # bytes per decode step: all weights + the KV cache read so far (mean over the steps)
        kv_bytes = kv_per_token * b * (prompt_len + new / 2)
        rows.append({
            "batch": b, "prefill_tok_s": b * prompt_len / t_pre,
            "prefill_frac_of_bf16_peak": pre_flops / t_pre / (tflops * 1e12),
            "decode_tok_s": b * new / t_dec,
            "decode_frac_of_bandwidth_roofline": (weight_bytes + kv_bytes) * new / t_dec / (tbps * 1e12),
        })
        torch.cuda.empty_cache()
    return rows


def judgegap_backend(path: Path, n: int, prompt_len: int) -> dict:
    """judgegap's hf backend on the same weights: one-pass verdicts and 16-token answers."""
    from judgegap.backends.base import ChatPrompt, GenRequest
    from judgegap.backends.hf import HFBackend

    be = HFBackend(str(path), chat_template="never")
    prompts = [ChatPrompt.of(None, " ".join(f"<{(i * 7 + k) % 5000 + 10}>" for k in range(prompt_len)))
               for i in range(n)]
    t0 = time.perf_counter()
    be.score_choices(prompts, [" <3>", " <4>"])
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    be.generate([GenRequest(p, max_new_tokens=16, stop=()) for p in prompts])
    t_gen = time.perf_counter() - t0
    return {"items": n, "score_items_s": n / t_score, "generate_items_s": n / t_gen, "stats": be.stats()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="qwen2.5-0.5b,qwen2.5-1.5b")
    ap.add_argument("--batches", default="1,8,64,max")
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--items", type=int, default=512, help="items for the judgegap-backend measurement")
    ap.add_argument("--peak-tflops", type=float)
    ap.add_argument("--peak-tbps", type=float)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: the GPU benchmark needs one (nothing measured)", file=sys.stderr)
        sys.exit(2)
    name = torch.cuda.get_device_name()
    tflops, tbps = peaks(name, args.peak_tflops, args.peak_tbps)
    out = {"device": name, "peak_bf16_tflops": tflops, "peak_tb_s": tbps, "torch": torch.__version__,
           "prompt_len": args.prompt_len, "new_tokens": args.new, "models": {}}
    for arch in args.arch.split(","):
        with tempfile.TemporaryDirectory() as td:
            model, cfg = build(arch, Path(td))
            free, total = torch.cuda.mem_get_info()
            per_seq = (args.prompt_len + args.new) * 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * \
                (cfg.hidden_size // cfg.num_attention_heads) * 2 * 4  # KV + activations headroom
            bmax = max(1, int(free * 0.6 / per_seq))
            batches = [bmax if b == "max" else int(b) for b in args.batches.split(",")]
            rows = raw_model(model, cfg, batches, args.prompt_len, args.new, tflops, tbps)
            del model
            torch.cuda.empty_cache()
            jg = judgegap_backend(Path(td), args.items, args.prompt_len)
            out["models"][arch] = {"raw": rows, "judgegap_hf": jg}
            for r in rows:
                if r.get("oom"):
                    print(f"{arch} batch {r['batch']}: out of memory")
                    continue
                print(f"{arch} batch {r['batch']:>4}: prefill {r['prefill_tok_s']:>10.0f} tok/s"
                      f" ({r['prefill_frac_of_bf16_peak']:.2f} of bf16 peak), decode {r['decode_tok_s']:>9.0f} tok/s"
                      f" ({r['decode_frac_of_bandwidth_roofline']:.2f} of bandwidth roofline)")
            print(f"{arch} judgegap hf backend: {jg['score_items_s']:.1f} verdict items/s,"
                  f" {jg['generate_items_s']:.1f} answer items/s (16 tokens), batching {jg['stats']['batching']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
