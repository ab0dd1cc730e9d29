"""A PEFT LoRA adapter as a llama.cpp LoRA adapter (GGUF), so a tuned model runs on the fast engine.

``judgegap train`` writes PEFT adapters trained in transformers on the base GGUF's dequantised
weights. llama.cpp applies LoRA adapters at inference (``y = W x + (alpha / r) B A x``, the same
formula as PEFT), from a GGUF file whose tensors are named after the base model's GGUF tensors
(``blk.0.attn_q.weight.lora_a`` / ``.lora_b``). This module writes that file: PEFT's A (r x in) and
B (out x r) keep their layout (llama.cpp checks A's input size and B's output size against the base
tensor), the module names are mapped with gguf-py's own HF -> GGUF table, and for the ``llama``
architecture B's rows of the Q and K projections are permuted exactly as llama.cpp's converter
permutes the base weights (transformers un-permutes them when it loads a GGUF, so the adapter was
trained in the un-permuted layout).

Only what is exact is converted: an adapter with DoRA, trained biases, ``modules_to_save``, a
per-module alpha, or a module the base GGUF has no tensor for is refused with the reason, never
approximated. The converted file is cached under the judgegap cache directory, keyed by the adapter's
fingerprint and the base weights', and written atomically.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from judgegap.errors import BackendError

# architectures whose HF <-> GGUF weight layout judgegap has checked against llama.cpp's converter;
# True = llama.cpp stores Q and K permuted (its rotary layout), so B's rows are permuted to match
ARCHITECTURES = {"llama": True, "qwen2": False, "qwen3": False, "gemma": False, "gemma2": False,
                 "gemma3": False}
_PREFIX = "base_model.model."


def cached_gguf_adapter(adapter: Path, base_gguf: Path, base_fp: str) -> Path:
    """The adapter as a llama.cpp LoRA file for ``base_gguf``, converted once and cached."""
    from judgegap.backends.models import cache_dir
    from judgegap.training.adapters import adapter_fingerprint

    out = cache_dir() / "gguf-lora" / f"{adapter_fingerprint(adapter)}-{base_fp[:16]}.gguf"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        try:
            peft_to_gguf_lora(adapter, base_gguf, tmp)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return out


def check_convertible(adapter: Path, base_gguf: Path) -> None:
    """The cheap part of :func:`peft_to_gguf_lora`'s checks (config and architecture, no weights read),
    for config load: raises BackendError with the reason."""
    _adapter_config(adapter)
    check_architecture(base_gguf, f"adapter {adapter}")


def check_architecture(base_gguf: Path, what: str, arch: str | None = None) -> None:
    """Refuse a base model whose architecture's HF -> GGUF layout this module has not been checked on
    (``arch``: already read from ``base_gguf``'s header)."""
    arch = arch or _base_header(base_gguf)[0]
    if arch not in ARCHITECTURES:
        raise BackendError(f"{what}: llama.cpp LoRA conversion is not checked for architecture {arch!r}"
                           f" (supported: {', '.join(sorted(ARCHITECTURES))}); use backend: hf for this model")


def peft_to_gguf_lora(adapter: Path, base_gguf: Path, out: Path) -> dict[str, Any]:
    """Write ``adapter`` (a PEFT LoRA directory) as a llama.cpp LoRA adapter for ``base_gguf`` at ``out``.

    Returns what was written (architecture, alpha, rank, tensor count). Raises BackendError naming
    the adapter and the first thing that cannot be converted exactly."""
    import gguf

    cfg = _adapter_config(adapter)
    arch, heads, kv_heads, blocks, base_shapes = _base_header(base_gguf)
    check_architecture(base_gguf, f"adapter {adapter}", arch)
    alpha = float(cfg.get("lora_alpha", 8))  # PEFT's default
    if cfg.get("use_rslora"):
        if cfg.get("rank_pattern"):
            raise BackendError(f"adapter {adapter}: rsLoRA with a per-module rank has no single llama.cpp alpha")
        alpha *= math.sqrt(int(cfg["r"]))  # PEFT scales by alpha / sqrt(r); llama.cpp by alpha / r
    names = gguf.get_tensor_name_map({v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch], blocks)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, w in _adapter_weights(adapter).items():
        for part, suffix in (("a", ".lora_A.weight"), ("b", ".lora_B.weight")):
            if key.startswith(_PREFIX) and key.endswith(suffix):
                module = key[len(_PREFIX):-len(suffix)]
                break
        else:
            raise BackendError(f"adapter {adapter}: tensor {key!r} is not a LoRA A/B weight of a linear layer;"
                               " llama.cpp cannot apply it")
        name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None or name not in base_shapes:
            raise BackendError(f"adapter {adapter}: module {module!r} has no tensor in {base_gguf.name}"
                               f" ({name or 'no GGUF name'}); llama.cpp cannot apply it")
        pairs.setdefault(name, {})[part] = w
    if not pairs:
        raise BackendError(f"adapter {adapter}: no LoRA weights found")
    ranks = set()
    with_permute = ARCHITECTURES[arch]
    writer = gguf.GGUFWriter(str(out), arch)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        for name in sorted(pairs):
            ab = pairs[name]
            if set(ab) != {"a", "b"}:
                raise BackendError(f"adapter {adapter}: {name} has only lora_{next(iter(ab)).upper()}")
            a, b = ab["a"], ab["b"]
            n_in, n_out = base_shapes[name]
            if a.shape[1] != n_in or b.shape[0] != n_out or a.shape[0] != b.shape[1]:
                raise BackendError(f"adapter {adapter}: {name} has A {tuple(a.shape)} / B {tuple(b.shape)}, the base"
                                   f" tensor is {n_out} x {n_in}: the adapter is for another model")
            if with_permute and (name.endswith(".attn_q.weight") or name.endswith(".attn_k.weight")):
                b = _permute_rows(b, heads, heads if name.endswith(".attn_q.weight") else kv_heads)
            ranks.add(int(a.shape[0]))
            writer.add_tensor(name + ".lora_a", np.ascontiguousarray(a, dtype=np.float32))
            writer.add_tensor(name + ".lora_b", np.ascontiguousarray(b, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return {"architecture": arch, "alpha": alpha, "ranks": sorted(ranks), "tensors": 2 * len(pairs)}


def _permute_rows(w: np.ndarray, n_head: int, n_kv_head: int) -> np.ndarray:
    """llama.cpp's Q/K row order for the llama architecture (the inverse of transformers' GGUF loader)."""
    n = n_kv_head or n_head
    return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _adapter_config(adapter: Path) -> dict[str, Any]:
    try:
        cfg = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BackendError(f"adapter {adapter}: unreadable adapter_config.json: {exc}") from None
    problems = [(cfg.get("peft_type", "LORA") != "LORA", f"peft_type {cfg.get('peft_type')!r} (only LORA)"),
                (bool(cfg.get("use_dora")), "DoRA (use_dora)"),
                (cfg.get("bias", "none") != "none", f"trained biases (bias: {cfg.get('bias')!r})"),
                (bool(cfg.get("modules_to_save")), "modules_to_save"),
                (bool(cfg.get("fan_in_fan_out")), "fan_in_fan_out"),
                (bool(cfg.get("alpha_pattern")), "a per-module alpha (alpha_pattern)")]
    bad = [what for cond, what in problems if cond]
    if bad:
        raise BackendError(f"adapter {adapter}: llama.cpp cannot apply {bad[0]} exactly; use backend: hf")
    return cfg


def _base_header(base_gguf: Path) -> tuple[str, int, int, int, dict[str, tuple[int, int]]]:
    """(architecture, heads, KV heads, blocks, {tensor: (in, out)}) of the base GGUF, weights unread."""
    from judgegap.backends.llamacpp import gguf_field, open_gguf

    r = open_gguf(base_gguf)
    arch = gguf_field(r, "general.architecture")
    heads = gguf_field(r, f"{arch}.attention.head_count") or 0
    kv = gguf_field(r, f"{arch}.attention.head_count_kv") or heads
    blocks = gguf_field(r, f"{arch}.block_count") or 0
    shapes = {t.name: (int(t.shape[0]), int(t.shape[1])) for t in r.tensors if len(t.shape) == 2}
    return arch, heads, kv, blocks, shapes


def _adapter_weights(adapter: Path) -> dict[str, np.ndarray]:
    """The adapter's tensors as float32 arrays (safetensors, or a torch .bin)."""
    import torch

    st = adapter / "adapter_model.safetensors"
    if st.is_file():
        from safetensors.torch import load_file

        tensors = load_file(str(st))
    else:
        tensors = torch.load(str(adapter / "adapter_model.bin"), map_location="cpu", weights_only=True)
    return {k: v.detach().to(torch.float32).numpy() for k, v in tensors.items()}
