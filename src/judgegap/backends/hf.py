"""Local Hugging Face models (transformers), including GGUF files and built-in names.

Design notes
- GGUF files are de-quantised by transformers once and the result is saved under the
  cache dir keyed by the file's fingerprint, so later loads take seconds.
- ``generate`` sorts requests by length and batches them with left padding; the batch
  size comes from a token budget derived from free memory unless configured.
- ``score_choices`` reads log P(choice | prompt) without sampling. Prompts that share a
  long token prefix (the judge prompts of one item share instructions, passage and
  question) are grouped: the prefix is encoded once and its KV cache is expanded to
  every member, so only the differing suffixes are recomputed.
- ``forward_attentions`` runs one prompt with eager attention for mechanism studies.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

from judgegap.backends.base import (BACKENDS, Backend, Capabilities, ChatPrompt, Completion, GenRequest,
                                    common_prefix_length)
from judgegap.backends.models import (BUILTIN_MODELS, check_gguf, converted_dir, file_fingerprint, resolve_builtin,
                                      resolve_model_ref)
from judgegap.errors import BackendError

MIN_SHARED_PREFIX = 16


def _forget_gguf_quantizer(model: Any) -> None:
    """GGUF weights are de-quantised on load; drop the marker so ``save_pretrained`` works."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _dequantize(gguf: Path, conv: Path) -> tuple[Any, Any]:
    """Load a GGUF through transformers (de-quantised to fp32) and save it as a plain Hugging Face
    folder at ``conv``, written under a temporary name and renamed (another process may finish first)."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tmp = conv.with_name(conv.name + f".tmp{os.getpid()}")
    _forget_gguf_quantizer(model)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(conv)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    # name the converted folder as the origin, as a load from it does: the GGUF's folder has no
    # config.json, and peft looks for one there on every adapter save (it warned at each checkpoint
    # of the first training on a GGUF, and wrote that folder into adapter_config.json)
    model.config._name_or_path = str(conv)
    model.name_or_path = str(conv)
    tok.name_or_path = str(conv)
    return tok, model


def export_hf(model: str, out: Path, gguf_file: str | None = None) -> Path:
    """Write a model as a plain Hugging Face folder (safetensors, fp32, tokenizer, chat template).

    Why: vLLM and SGLang serve Hugging Face folders, while the bundled models ship as GGUF files;
    this is the de-quantised copy the ``hf`` backend computes with, so a server started on it scores
    exactly what ``hf`` scores (measured: see benchmarks/RESULTS.md, vLLM). Refuses to overwrite."""
    import shutil

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise BackendError(f"export: {out} exists and is not empty")
    source, fp = resolve_model_ref(model, gguf_file)
    if source["kind"] != "gguf":
        raise BackendError(f"export: {model!r} is already a Hugging Face model ({source['kind']}); serve it as it is")
    conv = converted_dir(Path(source["path"]), fp)
    if not (conv / "config.json").is_file():
        conv.parent.mkdir(parents=True, exist_ok=True)
        try:
            _dequantize(Path(source["path"]), conv)
        except Exception as exc:  # noqa: BLE001 - transformers raises many types on a file it cannot read
            raise BackendError(f"export: cannot convert {model!r}: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.copytree(conv, tmp)
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out


class _StopOnText:
    """Stop each row once its generated text (after leading whitespace) contains a stop string.

    transformers' ``stop_strings`` pre-processes the whole vocabulary on every
    ``generate`` call (~0.4 s for a 49k vocabulary); decoding the few new tokens per
    step is far cheaper for the short answers and verdicts generated here.
    """

    def __init__(self, tok: Any, prompt_len: int, stop: tuple[str, ...]) -> None:
        self.tok, self.prompt_len, self.stop = tok, prompt_len, [s for s in stop if s]

    def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
        import torch

        done = []
        for row in input_ids.tolist():
            text = self.tok.decode(row[self.prompt_len:], skip_special_tokens=True).lstrip()
            done.append(any(s in text for s in self.stop))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def render_prompt(tok: Any, prompt: ChatPrompt, use_chat: bool) -> str:
    """The exact text a model sees: its chat template (+ assistant prefix), or plain text for base models."""
    if use_chat:
        msgs = [{"role": r, "content": c} for r, c in prompt.messages]
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) + prompt.assistant_prefix
    return prompt.plain_text()


def continuation_ids(tok: Any, use_chat: bool, prompt_text: str, prompt_ids: list[int], choice: str) -> list[int]:
    """The token ids a choice adds after the prompt, as the model tokenises prompt + choice
    together (so " 10" after "Score:" is whatever the tokenizer makes of it there); the choice
    alone where joining re-tokenises the prompt's end. Shared by every tokenizer-based backend."""
    full = list(tok(prompt_text + choice, add_special_tokens=not use_chat)["input_ids"])
    if full[:len(prompt_ids)] == prompt_ids and len(full) > len(prompt_ids):
        return full[len(prompt_ids):]
    ids = list(tok(choice, add_special_tokens=False)["input_ids"])
    if not ids:
        raise BackendError(f"choice {choice!r} encodes to no tokens")
    return ids


class PromptEncoder:
    """Prompt -> tokens exactly as a tokenizer-based backend scores them: the scoring path and
    training's loss mask (judgegap.training.sft) share it, so the tokens trained are the tokens read."""

    def __init__(self, tok: Any, use_chat: bool) -> None:
        self.tok, self.use_chat = tok, use_chat

    def render(self, prompt: ChatPrompt) -> str:
        return render_prompt(self.tok, prompt, self.use_chat)

    def encode(self, prompt: ChatPrompt) -> list[int]:
        return list(self.tok(self.render(prompt), add_special_tokens=not self.use_chat)["input_ids"])

    def continuation_ids(self, prompt_text: str, prompt_ids: list[int], choice: str) -> list[int]:
        return continuation_ids(self.tok, self.use_chat, prompt_text, prompt_ids, choice)


def kv_cache_name(model: Any) -> str:
    """The keyword (and output field) under which ``model.forward`` takes and returns its KV cache.

    transformers 5.25 renamed ``past_key_values`` to ``cache`` and removes the old name in 5.40; older
    releases know only ``past_key_values``. Read from the signature, so neither side of the rename warns or
    (after the removal) silently drops the shared prefix's cache."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PeftModel forwards **kwargs
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def tokenizer_cache_dir(gguf: Path, fingerprint: str) -> Path:
    """Where a tokenizer parsed out of a GGUF file is kept (parsing Gemma's takes ~30 s)."""
    from judgegap.backends.models import cache_dir

    return cache_dir() / "tokenizers" / f"{gguf.stem}-{fingerprint}"


def _save_tokenizer(tok: Any, target: Path) -> None:
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        tok.save_pretrained(tmp)
        if not target.exists():
            tmp.rename(target)
    except OSError:
        pass  # a cache that cannot be written only costs time
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


@functools.lru_cache(maxsize=4)
def load_tokenizer(ref: str):
    """A model's tokenizer (chat template included) without loading its weights.

    Cached per process: reading a tokenizer out of a GGUF file takes tens of seconds for
    Gemma's 262k vocabulary. Callers must not mutate it.
    """
    from transformers import AutoTokenizer

    try:
        gp = resolve_builtin(ref) if ref in BUILTIN_MODELS else Path(ref).expanduser()
        if gp.suffix == ".gguf":
            check_gguf(gp)
            fp = file_fingerprint(gp)
            for d in (converted_dir(gp, fp), tokenizer_cache_dir(gp, fp)):
                if (d / "tokenizer_config.json").is_file():
                    return AutoTokenizer.from_pretrained(d)
            tok = AutoTokenizer.from_pretrained(gp.parent, gguf_file=gp.name)
            _save_tokenizer(tok, tokenizer_cache_dir(gp, fp))
            return tok
        return AutoTokenizer.from_pretrained(ref, local_files_only=gp.is_dir())
    except BackendError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BackendError(f"cannot load tokenizer {ref!r}: {type(exc).__name__}: {exc}") from None


@BACKENDS.register("hf")
class HFBackend(Backend):
    backend_name = "hf"
    capabilities = Capabilities(attention=True)

    def __init__(self, model: str, *, gguf_file: str | None = None, dtype: str = "auto", device: str = "auto",
                 chat_template: str = "auto", batch_size: int | str = "auto", prefix_sharing: bool = True,
                 adapter: str | Path | None = None, **_: Any) -> None:
        import torch

        self.torch = torch
        self.model_ref = model
        self.prefix_sharing = prefix_sharing
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if dtype == "auto":
            dtype = "bfloat16" if self.device == "cuda" else "float32"
        self.dtype_name = dtype
        self._batch_size = batch_size
        self.load_seconds = 0.0
        t0 = time.perf_counter()
        self.source, self.source_fp = self._resolve(model, gguf_file)
        self.adapter = Path(adapter) if adapter else None
        self.adapter_fp = None
        if self.adapter is not None:
            from judgegap.training.adapters import checked_adapter

            self.adapter_fp = checked_adapter(self.adapter, self.source_fp, model)
        self.tok, self.model = self._load()
        if self.adapter is not None:
            from judgegap.training.adapters import apply_adapter

            self.model = apply_adapter(self.model, self.adapter)
            self.model.eval()
        self.load_seconds = time.perf_counter() - t0
        builtin = BUILTIN_MODELS.get(model)
        has_template = bool(getattr(self.tok, "chat_template", None))
        if chat_template == "auto":
            self.use_chat = has_template and (builtin.chat if builtin else True)
        elif chat_template == "always":
            if not has_template:
                raise BackendError(f"model {model!r} has no chat template but chat_template: always was set")
            self.use_chat = True
        else:
            self.use_chat = False
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.tok.padding_side = "left"
        self.encoder = PromptEncoder(self.tok, self.use_chat)
        self.forward_passes = 0
        self.prefix_tokens_saved = 0

    # -- loading ----------------------------------------------------------------
    def _resolve(self, model: str, gguf_file: str | None) -> tuple[dict[str, str], str]:
        return resolve_model_ref(model, gguf_file)

    def _load(self):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        torch = self.torch
        dtype = getattr(torch, self.dtype_name)
        kind, path = self.source["kind"], self.source["path"]
        try:
            if kind == "gguf":
                conv = converted_dir(Path(path), self.source_fp)
                if (conv / "config.json").is_file():
                    tok = AutoTokenizer.from_pretrained(conv)
                    model = AutoModelForCausalLM.from_pretrained(conv, dtype=dtype)
                else:
                    tok, model = _dequantize(Path(path), conv)
                    model = model.to(dtype)
            else:
                local = kind == "dir"
                tok = AutoTokenizer.from_pretrained(path, local_files_only=local)
                model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=local)
        except BackendError:
            raise
        except OSError as exc:
            raise BackendError(f"cannot load model {self.model_ref!r}: {str(exc).splitlines()[0]}") from None
        except Exception as exc:  # noqa: BLE001 - transformers raises many types on a bad file
            raise BackendError(f"cannot load model {self.model_ref!r}: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        model.to(self.device)
        model.eval()
        return tok, model

    def fingerprint(self) -> dict[str, Any]:
        fp = {"source": self.source["kind"], "weights": self.source_fp, "dtype": self.dtype_name,
              "chat": self.use_chat, "ref": self.model_ref}
        if self.adapter_fp:  # base fingerprints (and cached calls) are unchanged for untuned models
            fp["adapter"] = self.adapter_fp
        return fp

    # -- prompts ------------------------------------------------------------------
    def render(self, prompt: ChatPrompt) -> str:
        return self.encoder.render(prompt)

    def encode(self, prompt: ChatPrompt) -> list[int]:
        return self.encoder.encode(prompt)

    def _continuation_ids(self, prompt_text: str, prompt_ids: list[int], choice: str) -> list[int]:
        return self.encoder.continuation_ids(prompt_text, prompt_ids, choice)

    def _token_budget(self, generate: bool = False) -> int:
        """Tokens per batch: a function of the model, the device and its TOTAL memory only.

        Batch composition changes padding and float summation order, which can flip greedy
        near-ties; a budget from *free* memory made the same config give different numbers
        under load. On CPU prefill is compute-bound and padding only costs, so batches stay
        small and fixed; on a GPU they grow with its total memory (recorded in ``stats``)."""
        if isinstance(self._batch_size, int):
            return 0
        if self.device != "cuda":
            # measured on 2 cores, SmolLM2, ~250-token prompts: scoring is fastest at batch 1-4,
            # 16-token generation at batch 16 (0.74 items/s vs 0.66 at batch 4)
            return 4096 if generate else 1024
        cfg = self.model.config
        layers = getattr(cfg, "num_hidden_layers", 24)
        hidden = getattr(cfg, "hidden_size", 1024)
        per_token = (2 * layers * hidden + 16 * hidden) * (2 if self.dtype_name != "float32" else 4)
        total = self.torch.cuda.get_device_properties(self.torch.cuda.current_device()).total_memory
        weights = sum(p.numel() * p.element_size() for p in self.model.parameters())
        return max(256, min(int(max(total - weights, 0) * 0.5 / per_token), 65536))

    def _batches(self, lengths: list[int], generate: bool = False) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        if isinstance(self._batch_size, int):
            return [order[i:i + self._batch_size] for i in range(0, len(order), self._batch_size)]
        budget = self._token_budget(generate)
        batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            if cur and (len(cur) + 1) * lengths[cur[0]] > budget:
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    # -- generate -------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> list[Completion]:
        texts = [self.render(r.prompt) for r in requests]
        enc = [list(self.tok(t, add_special_tokens=not self.use_chat)["input_ids"]) for t in texts]
        out: list[Completion | None] = [None] * len(requests)
        # requests with different decoding settings cannot share a batch
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.max_new_tokens, r.temperature, r.top_p, r.stop, r.seed), []).append(i)
        for (max_new, temp, top_p, stop, seed), members in groups.items():
            for batch in self._batches([len(enc[i]) for i in members], generate=True):
                idx = [members[b] for b in batch]
                for i, comp in zip(idx, self._generate_batch([enc[i] for i in idx], max_new, temp, top_p, stop, seed)):
                    out[i] = comp
        return out  # type: ignore[return-value]

    def _generate_batch(self, ids: list[list[int]], max_new: int, temp: float, top_p: float,
                        stop: tuple[str, ...], seed: int) -> list[Completion]:
        torch = self.torch
        maxlen = max(len(x) for x in ids)
        pad = self.tok.pad_token_id
        input_ids = torch.tensor([[pad] * (maxlen - len(x)) + x for x in ids], device=self.device)
        mask = torch.tensor([[0] * (maxlen - len(x)) + [1] * len(x) for x in ids], device=self.device)
        kwargs: dict[str, Any] = dict(max_new_tokens=max_new, return_dict_in_generate=True, output_logits=True,
                                      pad_token_id=pad)
        if temp > 0:
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=temp, top_p=top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stopping_criteria=[_StopOnText(self.tok, maxlen, stop)])
        with torch.no_grad():
            res = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        self.forward_passes += len(res.logits)
        new = res.sequences[:, maxlen:]
        logps = torch.stack(res.logits, dim=1).float().log_softmax(-1)
        chosen = logps.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        eos = set(self.model.generation_config.eos_token_id if isinstance(
            self.model.generation_config.eos_token_id, list) else [self.model.generation_config.eos_token_id])
        out = []
        for row in range(new.shape[0]):
            toks, lps = [], []
            finish = "length"
            for j, t in enumerate(new[row].tolist()):
                if t in eos:  # rows that finished early are padded after their eos
                    finish = "stop"
                    break
                toks.append(t)
                lps.append(float(chosen[row, j]))
            # leading whitespace is not an answer: a base model often opens with a newline
            text = self.tok.decode(toks, skip_special_tokens=True).lstrip()
            cut = [text.find(s) for s in stop if s and s in text]
            if cut:
                text = text[:min(cut)]
                finish = "stop"
            out.append(Completion(text=text, tokens=[self.tok.decode([t]) for t in toks], token_logprobs=lps,
                                  n_prompt_tokens=len(ids[row]), finish_reason=finish))
        return out

    # -- scoring -------------------------------------------------------------------
    def _groups(self, enc: list[list[int]]) -> list[list[int]]:
        """Consecutive prompts sharing most of their tokens (same passage + question) form one group.

        Prompts of different items share only the template's opening, which is not worth a
        separate prefix pass, hence the "at least half the prompt" rule.
        """
        groups: list[list[int]] = []
        for i, ids in enumerate(enc):
            if self.prefix_sharing and groups:
                head = enc[groups[-1][0]]
                shared = common_prefix_length(head, ids)
                if shared >= MIN_SHARED_PREFIX and shared >= 0.5 * min(len(head), len(ids)):
                    groups[-1].append(i)
                    continue
            groups.append([i])
        return groups

    def choice_extensions(self, prompt: ChatPrompt, choices: list[str]) -> list[list[int]]:
        from judgegap.backends.base import token_extensions

        text = self.render(prompt)
        ids = list(self.tok(text, add_special_tokens=not self.use_chat)["input_ids"])
        return token_extensions([self._continuation_ids(text, ids, c) for c in choices])

    def score_choices(self, prompts: list[ChatPrompt], choices: list[str]) -> list[list[float]]:
        if not choices:
            raise BackendError("score_choices needs at least one choice")
        texts = [self.render(p) for p in prompts]
        enc = [list(self.tok(t, add_special_tokens=not self.use_chat)["input_ids"]) for t in texts]
        conts = [[self._continuation_ids(t, e, c) for c in choices] for t, e in zip(texts, enc)]
        single = all(len(c) == 1 for cs in conts for c in cs)
        out: list[list[float]] = [[0.0] * len(choices) for _ in prompts]
        groups = self._groups(enc)
        if single:  # prompts without a sharing partner: one batched pass, last position only
            alone = [g[0] for g in groups if len(g) == 1]
            for batch in self._batches([len(enc[i]) for i in alone]):
                idx = [alone[b] for b in batch]
                lp = self._last_logprobs([enc[i] for i in idx])
                for row, i in enumerate(idx):
                    out[i] = [float(lp[row, c[0]]) for c in conts[i]]
            groups = [g for g in groups if len(g) > 1]
        for group in groups:
            shared = min(len(enc[i]) for i in group) - 1
            for i in group[1:]:
                shared = min(shared, common_prefix_length(enc[group[0]], enc[i]))
            self.prefix_tokens_saved += shared * (len(group) - 1)
            # each row continues the shared prefix: the prompt's own suffix, plus all but the
            # last token of a multi-token choice; we need logits at the last k positions.
            rows: list[tuple[int, int, list[int]]] = []
            for i in group:
                suffix = enc[i][shared:]
                if single:
                    rows.append((i, -1, suffix))
                else:
                    rows.extend((i, ci, suffix + cont[:-1]) for ci, cont in enumerate(conts[i]))
            keep = 1 if single else max(len(c) for i in group for c in conts[i])
            logps = self._forward_rows(enc[group[0]][:shared], [r[2] for r in rows], keep)
            for (i, ci, _), lp in zip(rows, logps):
                if single:
                    out[i] = [float(lp[-1, c[0]]) for c in conts[i]]
                else:
                    cont = conts[i][ci]
                    tail = lp[keep - len(cont):]
                    out[i][ci] = float(sum(tail[j, t] for j, t in enumerate(cont)))
        return out

    def _last_logprobs(self, seqs: list[list[int]]):
        """Next-token log-probabilities after each sequence (left-padded batch)."""
        torch = self.torch
        maxlen = max(len(x) for x in seqs)
        pad = self.tok.pad_token_id
        ids = torch.tensor([[pad] * (maxlen - len(x)) + x for x in seqs], device=self.device)
        mask = torch.tensor([[0] * (maxlen - len(x)) + [1] * len(x) for x in seqs], device=self.device)
        with torch.no_grad():
            res = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=1)
        self.forward_passes += 1
        return res.logits[:, -1].float().log_softmax(-1)

    def _forward_rows(self, prefix: list[int], rows: list[list[int]], keep: int):
        """Log-probabilities at the last ``keep`` positions of rows continuing one shared prefix.

        The prefix is encoded once; its KV cache is repeated for the rows, which are
        left-padded after the prefix (padding masked out, positions counted per row).
        """
        import copy

        torch = self.torch
        dev = self.device
        kv = kv_cache_name(self.model)
        with torch.no_grad():
            res = self.model(input_ids=torch.tensor([prefix], device=dev), use_cache=True, logits_to_keep=1)
        self.forward_passes += 1
        cache = getattr(res, kv)
        results = []
        step = 32  # bound rows per pass so memory stays flat for big groups
        for s in range(0, len(rows), step):
            part = rows[s:s + step]
            maxlen = max(len(r) for r in part)
            pad = self.tok.pad_token_id
            ids = torch.tensor([[pad] * (maxlen - len(r)) + r for r in part], device=dev)
            m_rows = torch.tensor([[0] * (maxlen - len(r)) + [1] * len(r) for r in part], device=dev)
            pos = torch.tensor([[0] * (maxlen - len(r)) + list(range(len(prefix), len(prefix) + len(r)))
                                for r in part], device=dev)
            c = copy.deepcopy(cache) if s + step < len(rows) else cache
            c.batch_repeat_interleave(len(part))
            mask = torch.cat([torch.ones(len(part), len(prefix), dtype=m_rows.dtype, device=dev), m_rows], 1)
            with torch.no_grad():
                res = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, **{kv: c},
                                 use_cache=True, logits_to_keep=keep)
            self.forward_passes += 1
            lp = res.logits.float().log_softmax(-1)
            results.extend(lp[j] for j in range(len(part)))
        return results

    def top_logprobs(self, prompts: list[ChatPrompt], k: int) -> list[list[tuple[str, float]]]:
        enc = [self.encode(p) for p in prompts]
        out: list[list[tuple[str, float]]] = [[] for _ in prompts]
        for batch in self._batches([len(e) for e in enc]):
            lp = self._last_logprobs([enc[i] for i in batch])
            vals, idx = lp.topk(k, dim=-1)
            for row, i in enumerate(batch):
                out[i] = [(self.tok.decode([int(t)]), float(v)) for t, v in zip(idx[row], vals[row])]
        return out

    # -- mechanism ------------------------------------------------------------------
    def forward_attentions(self, input_ids: list[int]) -> tuple[Any, Any]:
        """(logits, attentions per layer) of one sequence with eager attention."""
        torch = self.torch
        prev = getattr(self.model.config, "_attn_implementation", None)
        self.model.set_attn_implementation("eager")
        try:
            with torch.no_grad():
                res = self.model(input_ids=torch.tensor([input_ids], device=self.device), output_attentions=True)
        finally:
            if prev:
                self.model.set_attn_implementation(prev)
        return res.logits[0], res.attentions

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of a rendered prompt (as ``encode`` makes them) with character offsets."""
        enc = self.tok(text, add_special_tokens=not self.use_chat, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def attention_modules(self) -> list[Any]:
        """The self-attention module of every layer, in layer order."""
        mods = [m for n, m in self.model.named_modules() if n.endswith("self_attn")]
        if not mods:
            raise BackendError(f"model {self.model_ref!r}: no '*.self_attn' modules to read attention from")
        return mods

    def span_attention(self, input_ids: list[int], labels: Any, n_spans: int, queries: list[int],
                       attention_hook: Any = None) -> Any:
        """Attention mass from ``queries`` onto each span: array [layers, heads, n_spans].

        One sequence, eager attention; a forward hook on every layer reduces that layer's
        attention weights to span masses right away (averaged over the query positions),
        so the full [heads, L, L] tensors of all layers are never held at once.
        ``attention_hook`` (tests) may rewrite the attention mask a layer sees.
        """
        torch = self.torch
        onehot = torch.zeros(len(input_ids), n_spans, device=self.device)
        onehot[torch.arange(len(input_ids)), torch.as_tensor(labels, device=self.device)] = 1.0
        q = torch.as_tensor(queries, device=self.device)
        per_layer: list[Any] = []

        def reduce(_mod, _args, output):
            w = output[1]
            if w is None:
                raise BackendError("attention weights unavailable (eager attention did not return them)")
            per_layer.append((w[0][:, q, :].float() @ onehot).mean(1).cpu())  # [heads, spans]
            return (output[0], None) + tuple(output[2:])

        prev = getattr(self.model.config, "_attn_implementation", None)
        self.model.set_attn_implementation("eager")
        handles = [m.register_forward_hook(reduce) for m in self.attention_modules()]
        if attention_hook is not None:
            handles += [m.register_forward_pre_hook(attention_hook, with_kwargs=True) for m in self.attention_modules()]
        try:
            with torch.no_grad():
                self.model(input_ids=torch.tensor([input_ids], device=self.device), use_cache=False,
                           logits_to_keep=1)
            self.forward_passes += 1
        finally:
            for h in handles:
                h.remove()
            if prev:
                self.model.set_attn_implementation(prev)
        return torch.stack(per_layer).numpy()

    def stats(self) -> dict[str, Any]:
        return {"forward_passes": self.forward_passes, "prefix_tokens_saved": self.prefix_tokens_saved,
                "load_seconds": round(self.load_seconds, 2), "device": self.device,
                "batching": {"batch_size": self._batch_size, "generate_token_budget": self._token_budget(True),
                             "score_token_budget": self._token_budget(False)}}
