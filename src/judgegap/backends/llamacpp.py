"""llama.cpp in-process (``backend: llamacpp``): GGUF files as they are, quantised, on CPU or GPU.

Binding: ``xllamacpp`` — prebuilt wheels (a user never waits for a compiler), llama.cpp's own
server API in-process, AVX2/FMA kernels on this CPU, the same speed as a native
``llama-cpp-python`` build (measured: Qwen2.5-Coder-1.5B 5.25 s vs 5.2 s per answer).

Design notes
- Prompts are rendered and tokenised by the model's own tokenizer (chat template included),
  exactly as the ``hf`` backend does, and sent as token ids: both backends see the same tokens.
- ``score_choices`` is exact: log P(choice | prompt) = the sum over the choice's tokens of the
  log-softmax of the full logits at each position. llama.cpp reports pre-sampling
  probabilities of the top ``n_probs`` tokens; a needed token outside that list is asked for
  again with ``n_probs`` = the vocabulary size (rare, counted in ``stats``), so no choice is
  ever read from a prefix or guessed. " 10" = " 1" + "0" costs one extra single-token step.
  A position whose greedy token is a lone UTF-8 byte (SmolLM2's "ě") gets no probabilities from
  the server, which holds such a token back; it is asked again with byte tokens banned from
  sampling, which leaves the reported (raw-logit) probabilities unchanged (``_top``).
- Prefix reuse: the server keeps the last prompt's KV cache and reuses the longest common
  prefix, so the calls of one item run back to back. Tokens submitted vs actually evaluated are
  counted (``stats``). llama.cpp is deterministic for a given call order but not
  batch-invariant: a suffix evaluated after a reused prefix differs from the whole prompt at
  once by up to ~0.1 nats (measured on SmolLM2 Q4_1; verdicts unchanged). ``cache_ram_mib``
  (off by default) also restores older prompts' states from RAM, which makes numbers depend on
  the cache's history, so it is opt-in.
- ``adapter:`` a PEFT LoRA (``judgegap train``'s output) is written once as a llama.cpp LoRA GGUF
  (judgegap.training.gguf_adapter) and applied unmerged, so a tuned model is evaluated on this engine
  with the base GGUF as it is; its calls are cached under the adapter's fingerprint.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from judgegap.backends.base import BACKENDS, Backend, Capabilities, ChatPrompt, Completion, GenRequest
from judgegap.backends.models import BUILTIN_MODELS, resolve_model_ref
from judgegap.errors import BackendError

TOP_N = 20  # top tokens asked for per position; a needed token outside them triggers a wider ask,
WIDE_N = 1024  # then, outside those too, a full-vocabulary ask (262k entries for Gemma 3: seconds a call)


def gguf_source(model: str, gguf_file: str | None, what: str, instead: str) -> tuple[Path, str]:
    """The GGUF file behind a model reference and its fingerprint, or one line saying ``what`` loads
    GGUF files only and what to use ``instead`` -- shared by the backend and the training config check,
    so both refuse the same references with the same words."""
    source, fp = resolve_model_ref(model, gguf_file)
    if source["kind"] != "gguf":
        raise BackendError(f"{what} loads GGUF files; {model!r} is a {source['kind']} model (use {instead})")
    return Path(source["path"]), fp


def gguf_architecture(path: Path) -> tuple[str, int | None]:
    """(general.architecture, context length) read from the GGUF header without loading weights."""
    arch, ctx, _ = gguf_header(path)
    return arch, ctx


def gguf_header(path: Path) -> tuple[str, int | None, int | None]:
    """(general.architecture, context length, sliding-window size or None) from the GGUF header."""
    r = open_gguf(path)
    arch = gguf_field(r, "general.architecture")
    if not isinstance(arch, str):
        raise BackendError(f"{path}: GGUF file has no general.architecture")
    ctx = gguf_field(r, f"{arch}.context_length")
    swa = gguf_field(r, f"{arch}.attention.sliding_window")
    return arch, ctx if isinstance(ctx, int) else None, swa if isinstance(swa, int) and swa > 0 else None


def open_gguf(path: Path) -> Any:
    """A GGUFReader on ``path`` (metadata and tensor index; weights are memory-mapped, not read)."""
    try:
        from gguf import GGUFReader

        return GGUFReader(str(path), "r")
    except Exception as exc:  # noqa: BLE001 - the gguf reader raises many types on a bad file
        raise BackendError(f"{path}: not a readable GGUF file ({type(exc).__name__}: {str(exc)[:120]})") from None


def gguf_field(reader: Any, name: str) -> Any:
    """One scalar metadata field of a GGUF file: a string or an int, None when absent."""
    f = reader.fields.get(name)
    if f is None:
        return None
    v = f.parts[f.data[0]]
    return bytes(v).decode("utf-8", "replace") if f.types and f.types[0].name == "STRING" else int(v[0])


def supported_architectures() -> set[str]:
    """Architectures the installed llama.cpp generation knows (gguf-py's table, kept in step with it)."""
    import gguf

    return {str(v) for v in gguf.MODEL_ARCH_NAMES.values()}


# llama.cpp's name for a kernel family -> the /proc/cpuinfo flag of a CPU that can run it. AMX is left
# out on purpose: a build with it crashed here (a VM that lists amx_int8 but faults on ldtilecfg).
_KERNEL_FLAGS = {"AVX2": "avx2", "FMA": "fma", "AVX_VNNI": "avx_vnni", "AVX512": "avx512f",
                 "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16"}


def cpu_kernels(system_info: str, cpu_flags: set[str]) -> tuple[list[str], list[str]]:
    """(kernel families the installed llama.cpp build has, those this CPU could run but the build lacks).

    Why: the prebuilt xllamacpp wheel is built for AVX2; on an AVX-512 CPU a build for the CPU ran
    Qwen2.5-Coder-1.5B ~1.7x faster (benchmarks/RESULTS.md), so a run records which kernels it used
    and says when faster ones were left on the table."""
    built = [name.strip() for part in system_info.split("|") if "=" in part
             for name, val in [part.split(":")[-1].split("=", 1)] if val.strip() == "1"]
    unused = [k for k, flag in _KERNEL_FLAGS.items() if flag in cpu_flags and k not in built]
    return built, unused


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: nothing to compare against
        return set()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


@BACKENDS.register("llamacpp")
class LlamaCppBackend(Backend):
    backend_name = "llamacpp"
    capabilities = Capabilities(attention=False, prefix_cache=True)

    def __init__(self, model: str, *, gguf_file: str | None = None, chat_template: str = "auto",
                 n_ctx: int | None = None, n_threads: int | None = None, n_gpu_layers: int = 0,
                 cache_ram_mib: int = 0, swa_full: bool | None = None, n_predict: int | None = None,
                 adapter: str | Path | None = None, **_: Any) -> None:
        try:
            import xllamacpp as xl
        except ImportError:
            raise BackendError("backend 'llamacpp' needs xllamacpp: pip install xllamacpp (prebuilt wheels)") from None
        self.model_ref = model
        self.path, self.source_fp = gguf_source(model, gguf_file, "backend 'llamacpp'", "backend: hf")
        arch, train_ctx, self.sliding_window = gguf_header(self.path)
        # Without a full-size sliding-window cache, llama.cpp cannot roll a SWA model's KV state back to
        # a shared prefix, so each of an item's prompts re-evaluated the whole passage (Gemma 3: 252 of
        # 256 tokens evaluated for a judge prompt sharing 235; with it, 21). Measured in RESULTS.md.
        self.swa_full = bool(self.sliding_window) if swa_full is None else bool(swa_full)
        if arch not in supported_architectures():
            raise BackendError(f"{self.path}: architecture {arch!r} is not supported by the installed llama.cpp")
        self.arch, self.train_ctx = arch, train_ctx
        self.adapter, self.adapter_fp, lora_file = self._adapter(adapter, model)
        from judgegap.backends.hf import load_tokenizer, render_prompt

        self._render = render_prompt
        self.tok = load_tokenizer(str(self.path) if model not in BUILTIN_MODELS else model)
        builtin = BUILTIN_MODELS.get(model)
        has_template = bool(getattr(self.tok, "chat_template", None))
        if chat_template == "always" and not has_template:
            raise BackendError(f"model {model!r} has no chat template but chat_template: always was set")
        self.use_chat = has_template and chat_template != "never" and (builtin is None or builtin.chat)
        self.n_ctx = int(n_ctx or min(train_ctx or 4096, 8192))
        if train_ctx and self.n_ctx > train_ctx:
            raise BackendError(f"n_ctx {self.n_ctx} exceeds the model's trained context of {train_ctx} tokens")
        p = xl.CommonParams()
        p.model.path = str(self.path)
        p.n_ctx = self.n_ctx
        p.n_parallel = 1
        p.n_batch = min(2048, self.n_ctx)
        p.cpuparams.n_threads = int(n_threads or os.cpu_count() or 2)
        p.cpuparams_batch.n_threads = int(n_threads or os.cpu_count() or 2)
        p.n_gpu_layers = int(n_gpu_layers)
        p.cache_ram_mib = int(cache_ram_mib)
        p.swa_full = self.swa_full
        if n_predict is not None:  # the cap for HTTP clients that send no max_tokens (benchmarks/engines.py)
            p.n_predict = int(n_predict)
        if lora_file is not None:
            p.lora_adapters = [xl.CommonAdapterLoraInfo(str(lora_file), 1.0)]
        p.warmup = False
        try:
            p.verbosity = 0  # quiet: llama.cpp logs every request otherwise
        except (AttributeError, TypeError):
            pass
        t0 = time.perf_counter()
        try:
            self.server = xl.Server(p)
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"llama.cpp cannot load {self.path}: {type(exc).__name__}: {str(exc)[:160]}") from None
        self.load_seconds = time.perf_counter() - t0
        self.kernels, self.kernels_unused = cpu_kernels(xl.get_system_info(), _cpu_flags())
        if self.kernels_unused and not n_gpu_layers:
            self.load_note = (f"llama.cpp: this CPU has {', '.join(self.kernels_unused)}, which the installed build"
                              " does not use; a build for this CPU is faster (README: 'llama.cpp built for this CPU')")
        self.n_vocab = len(self.tok)
        self.tokens_submitted = 0
        self.tokens_evaluated = 0
        self.full_vocab_asks = 0
        self.wide_asks = 0
        self.partial_utf8_retries = 0
        self._partial_ids: list[int] | None = None
        self.requests = 0

    def _adapter(self, adapter: str | Path | None, model: str) -> tuple[Path | None, str | None, Path | None]:
        """(adapter dir, its fingerprint, the llama.cpp LoRA file) for a PEFT adapter, or Nones."""
        if not adapter:
            return None, None, None
        from judgegap.training.adapters import checked_adapter
        from judgegap.training.gguf_adapter import cached_gguf_adapter

        path = Path(adapter)
        return path, checked_adapter(path, self.source_fp, model), cached_gguf_adapter(path, self.path, self.source_fp)

    # -- identity -------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        fp = {"engine": "llama.cpp", "weights": self.source_fp, "chat": self.use_chat, "ref": self.model_ref}
        if self.adapter_fp:  # base fingerprints (and cached calls) are unchanged for untuned models
            fp["adapter"] = self.adapter_fp
        if self.swa_full and self.sliding_window:  # prefix reuse changes numbers slightly (not batch-invariant)
            fp["swa_full"] = True
        return fp

    def stats(self) -> dict[str, Any]:
        sub = self.tokens_submitted
        return {"engine": "llama.cpp (xllamacpp)", "load_seconds": round(self.load_seconds, 2), "n_ctx": self.n_ctx,
                "adapter": str(self.adapter) if self.adapter else None,
                "sliding_window": self.sliding_window, "swa_full": self.swa_full,
                "requests": self.requests, "prompt_tokens_submitted": sub,
                "prompt_tokens_evaluated": self.tokens_evaluated,
                "prefix_reuse": round(1 - self.tokens_evaluated / sub, 4) if sub else None,
                "wide_asks": self.wide_asks, "full_vocabulary_asks": self.full_vocab_asks,
                "partial_utf8_retries": self.partial_utf8_retries,
                "cpu_kernels": self.kernels, "cpu_kernels_unused": self.kernels_unused}

    # -- prompts --------------------------------------------------------------------------
    def render(self, prompt: ChatPrompt) -> str:
        return self._render(self.tok, prompt, self.use_chat)

    def encode_text(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=not self.use_chat)["input_ids"])

    def encode(self, prompt: ChatPrompt) -> list[int]:
        return self.encode_text(self.render(prompt))

    def _continuation(self, text: str, ids: list[int], choice: str) -> list[int]:
        from judgegap.backends.hf import continuation_ids

        return continuation_ids(self.tok, self.use_chat, text, ids, choice)

    def choice_extensions(self, prompt: ChatPrompt, choices: list[str]) -> list[list[int]]:
        from judgegap.backends.base import token_extensions

        text = self.render(prompt)
        ids = self.encode_text(text)
        return token_extensions([self._continuation(text, ids, c) for c in choices])

    def _check_len(self, n: int, extra: int) -> None:
        if n + extra > self.n_ctx:
            raise BackendError(f"a prompt of {n} tokens (+{extra} to generate) exceeds the context of {self.n_ctx}"
                               f" tokens; set n_ctx up to {self.train_ctx or 'the model maximum'} or use a shorter"
                               " dataset / max_tokens")

    # -- transport ------------------------------------------------------------------------
    def _call(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        from judgegap.errors import raise_if_interrupted

        try:
            res = self.server.handle_completions({**body, "cache_prompt": True})
        except Exception as exc:  # noqa: BLE001
            raise_if_interrupted()
            raise BackendError(f"llama.cpp request failed: {type(exc).__name__}: {str(exc)[:160]}") from None
        if not isinstance(res, dict) or "choices" not in res:
            raise_if_interrupted()  # a Ctrl-C inside the call comes back as an error reply
            msg = (res or {}).get("error", {}).get("message") if isinstance(res, dict) else None
            raise BackendError(f"llama.cpp request failed: {msg or str(res)[:160]}")
        usage, timings = res.get("usage") or {}, res.get("timings") or {}
        self.tokens_submitted += int(usage.get("prompt_tokens") or 0)
        self.tokens_evaluated += int(timings.get("prompt_n") or 0)
        return res

    def _partial_utf8_ids(self) -> list[int]:
        """Token ids whose text alone is not complete UTF-8 (byte tokens), found once on first need."""
        if self._partial_ids is None:
            self._partial_ids = [i for i in range(self.n_vocab) if "\ufffd" in self.tok.decode([i])]
        return self._partial_ids

    def _top(self, ids: list[int], n: int, *, ban_partial_utf8: bool = False) -> dict[int, float]:
        """log-probabilities of the top ``n`` next tokens after ``ids``, from the full softmax.

        llama.cpp's server holds back a sampled token whose text is an incomplete UTF-8 sequence
        and, with one token to generate, then returns no probabilities. Such a position is asked
        again with those byte tokens banned from *sampling* (``logit_bias``): the probabilities it
        reports come from the raw logits, so they are the same numbers (tested), the banned greedy
        token included. Asking for two tokens instead could return the next position's list.
        """
        body: dict[str, Any] = {"prompt": ids, "max_tokens": 1, "n_probs": n, "temperature": 0.0}
        if ban_partial_utf8:
            body["logit_bias"] = [[t, False] for t in self._partial_utf8_ids()]
        res = self._call(body)
        content = ((res["choices"][0].get("logprobs") or {}).get("content")) or []
        if not content and not ban_partial_utf8:
            self.partial_utf8_retries += 1
            return self._top(ids, n, ban_partial_utf8=True)
        if not content:
            raise BackendError("llama.cpp returned no token probabilities")
        return {int(t["id"]): float(t["logprob"]) for t in content[0].get("top_logprobs", [])}

    def _logprob_at(self, ids: list[int], token: int, cache: dict[tuple[int, ...], dict[int, float]]) -> float:
        key = tuple(ids)
        if key not in cache:
            cache[key] = self._top(ids, TOP_N)
        if token not in cache[key] and len(cache[key]) < min(WIDE_N, self.n_vocab):
            self.wide_asks += 1
            cache[key] = self._top(ids, min(WIDE_N, self.n_vocab))
        if token not in cache[key]:
            self.full_vocab_asks += 1
            cache[key] = self._top(ids, self.n_vocab)
            if token not in cache[key]:
                raise BackendError(f"llama.cpp gave no probability for token id {token} (vocabulary mismatch?)")
        return cache[key][token]

    # -- protocol -------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> list[Completion]:
        out = []
        for r in requests:
            ids = self.encode(r.prompt)
            self._check_len(len(ids), r.max_new_tokens)
            body: dict[str, Any] = {"prompt": ids, "max_tokens": r.max_new_tokens, "temperature": r.temperature,
                                    "top_p": r.top_p, "seed": r.seed, "n_probs": 1}
            if r.stop:
                body["stop"] = [s for s in r.stop if s]
            res = self._call(body)
            ch = res["choices"][0]
            content = ((ch.get("logprobs") or {}).get("content")) or []
            text = ch.get("text") or ""
            out.append(Completion(text=text, tokens=[c.get("token", "") for c in content],
                                  token_logprobs=[float(c.get("logprob", 0.0)) for c in content],
                                  n_prompt_tokens=len(ids),
                                  finish_reason="stop" if ch.get("finish_reason") == "stop" else "length"))
        return out

    def score_choices(self, prompts: list[ChatPrompt], choices: list[str]) -> list[list[float]]:
        out = []
        for p in prompts:
            text = self.render(p)
            ids = self.encode_text(text)
            conts = [self._continuation(text, ids, c) for c in choices]
            self._check_len(len(ids) + max(len(c) for c in conts), 0)
            cache: dict[tuple[int, ...], dict[int, float]] = {}
            row = []
            for cont in conts:
                total = 0.0
                for k, tok_id in enumerate(cont):
                    total += self._logprob_at(ids + cont[:k], tok_id, cache)
                row.append(total)
            out.append(row)
        return out

    def top_logprobs(self, prompts: list[ChatPrompt], k: int) -> list[list[tuple[str, float]]]:
        out = []
        for p in prompts:
            ids = self.encode(p)
            self._check_len(len(ids), 1)
            top = self._top(ids, k)
            ranked = sorted(top.items(), key=lambda x: -x[1])[:k]
            out.append([(self.tok.decode([t]), lp) for t, lp in ranked])
        return out

    def close(self) -> None:
        server = getattr(self, "server", None)
        self.server = None
        del server
