"""OpenAI-compatible servers (vLLM, SGLang, llama.cpp, hosted APIs) behind the backend protocol.

- Async requests with bounded concurrency; timeouts; retries with exponential backoff and
  jitter on 429 / 5xx / connection errors / unparseable replies, honouring ``Retry-After``.
  Retries are counted and reported in the run summary.
- The API key comes from an environment variable named in the config; it is sent as a
  header and never logged, stored, or put in a cache key.
- ``score_choices`` maps to ``top_logprobs`` of a one-token completion: a choice's score is
  the log-probability of its first token as the server tokenises it (the longest top token
  the choice starts with). Choices absent from the top list get -inf. A server that does not
  return log-probabilities fails with one clear error instead of silently guessing.
- ``endpoint: completions`` sends a rendered prompt: with ``tokenizer`` set (a built-in
  model name, folder or hub id) the model's own chat template renders it, exactly as the
  ``hf`` backend does; otherwise plain text. ``endpoint: chat`` lets the server render.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from judgegap.backends.base import BACKENDS, Backend, Capabilities, ChatPrompt, Completion, GenRequest
from judgegap.errors import BackendError

TOP_K_FOR_CHOICES = 20


class _Retryable(Exception):
    def __init__(self, msg: str, retry_after: float | None = None) -> None:
        super().__init__(msg)
        self.retry_after = retry_after


def _retry_after(resp: httpx.Response) -> float | None:
    val = resp.headers.get("retry-after")
    try:
        return max(0.0, float(val)) if val is not None else None
    except ValueError:
        return None


@BACKENDS.register("openai")
class OpenAIBackend(Backend):
    backend_name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 endpoint: str = "completions", concurrency: int = 8, timeout_s: float = 60.0,
                 max_retries: int = 6, tokenizer: str | None = None, logprobs: bool = True,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0, **_: Any) -> None:
        if not base_url:
            raise BackendError("backend 'openai' needs base_url")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = os.environ.get(api_key_env, "")
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.tokenizer_ref = tokenizer
        self._tok = None
        if tokenizer:
            from judgegap.backends.hf import load_tokenizer

            self._tok = load_tokenizer(tokenizer)
        self.capabilities = Capabilities(logprobs=logprobs, score_choices=logprobs, top_logprobs=logprobs,
                                         multi_token_choices=False)
        self.retries = 0
        self.failures: dict[str, int] = {}
        self.requests = 0

    def fingerprint(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, "endpoint": self.endpoint,
                "tokenizer": self.tokenizer_ref}

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.retries, "retry_reasons": dict(self.failures)}

    # -- rendering ------------------------------------------------------------------
    def render(self, prompt: ChatPrompt) -> str:
        if self._tok is not None and getattr(self._tok, "chat_template", None):
            msgs = [{"role": r, "content": c} for r, c in prompt.messages]
            return self._tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) + \
                prompt.assistant_prefix
        return prompt.plain_text()

    def _body(self, prompt: ChatPrompt, max_tokens: int, temperature: float, top_p: float,
              stop: list[str], seed: int, top_logprobs: int | None) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "temperature": temperature,
                                "top_p": top_p, "seed": seed}
        if stop:
            body["stop"] = stop
        if self.endpoint == "chat":
            msgs = [{"role": r, "content": c} for r, c in prompt.messages]
            if prompt.assistant_prefix:
                msgs[-1] = {**msgs[-1], "content": msgs[-1]["content"] + "\n\n" + prompt.assistant_prefix}
            body["messages"] = msgs
            if top_logprobs is not None:
                body.update(logprobs=True, top_logprobs=top_logprobs)
            return "/chat/completions", body
        body["prompt"] = self.render(prompt)
        if top_logprobs is not None:
            body["logprobs"] = top_logprobs
        return "/completions", body

    # -- transport --------------------------------------------------------------------
    async def _post(self, client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                self.requests += 1
                resp = await client.post(self.base_url + path, json=body)
                if resp.status_code in (401, 403):
                    raise BackendError(f"{self.base_url}: authentication failed (HTTP {resp.status_code});"
                                       " check the API key environment variable")
                if resp.status_code == 404:
                    raise BackendError(f"{self.base_url}{path}: not found (HTTP 404); wrong base_url or endpoint?")
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise _Retryable(f"http_{resp.status_code}", _retry_after(resp))
                if resp.status_code >= 400:
                    raise BackendError(f"{self.base_url}{path}: HTTP {resp.status_code}: {resp.text[:200]}")
                try:
                    data = resp.json()
                    _ = data["choices"][0]
                except (ValueError, KeyError, IndexError, TypeError):
                    raise _Retryable("malformed_json") from None
                return data
            except httpx.TimeoutException:
                err: _Retryable = _Retryable("timeout")
            except httpx.TransportError:
                err = _Retryable("connection")
            except _Retryable as exc:
                err = exc
            self.failures[str(err)] = self.failures.get(str(err), 0) + 1
            if attempt >= self.max_retries:
                if str(err) == "connection":
                    raise BackendError(f"cannot reach {self.base_url} (server down?) after {attempt + 1} attempts")
                raise BackendError(f"{self.base_url}: request failed after {attempt + 1} attempts ({err})")
            self.retries += 1
            delay = err.retry_after if err.retry_after is not None else min(
                self.backoff_max_s, self.backoff_base_s * 2 ** attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            await asyncio.sleep(delay)

    def _gather(self, jobs: list[Callable[[httpx.AsyncClient], Awaitable[Any]]], label: str) -> list[Any]:
        async def main() -> list[Any]:
            sem = asyncio.Semaphore(self.concurrency)
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            async with httpx.AsyncClient(timeout=self.timeout_s, headers=headers, limits=limits) as client:
                async def one(job):
                    async with sem:
                        return await job(client)

                return await asyncio.gather(*(one(j) for j in jobs))

        try:
            return asyncio.run(main())
        except RuntimeError as exc:
            if "asyncio.run() cannot be called" not in str(exc):
                raise
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(1) as ex:
                return ex.submit(asyncio.run, main()).result()

    # -- protocol -------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> list[Completion]:
        def job(r: GenRequest):
            async def run(client: httpx.AsyncClient) -> Completion:
                path, body = self._body(r.prompt, r.max_new_tokens, r.temperature, r.top_p, list(r.stop), r.seed,
                                        1 if self.capabilities.logprobs else None)
                data = await self._post(client, path, body)
                return self._completion(data)
            return run

        return self._gather([job(r) for r in requests], "generate")

    def _completion(self, data: dict[str, Any]) -> Completion:
        ch = data["choices"][0]
        text = ch.get("text") if self.endpoint == "completions" else (ch.get("message") or {}).get("content")
        toks, lps = [], []
        lp = ch.get("logprobs") or {}
        if self.endpoint == "completions" and lp.get("tokens"):
            toks, lps = list(lp["tokens"]), [float(x) for x in lp.get("token_logprobs") or []]
        elif lp.get("content"):
            toks = [c["token"] for c in lp["content"]]
            lps = [float(c["logprob"]) for c in lp["content"]]
        usage = data.get("usage") or {}
        return Completion(text=text or "", tokens=toks, token_logprobs=lps,
                          n_prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          finish_reason=ch.get("finish_reason") or "stop")

    def _top(self, data: dict[str, Any]) -> list[tuple[str, float]]:
        ch = data["choices"][0]
        lp = ch.get("logprobs")
        if not lp:
            raise BackendError(f"{self.base_url} returned no log-probabilities; this server cannot do "
                               "score_choices / top_logprobs (set logprobs: false and use text verdicts)")
        if self.endpoint == "completions":
            tops = lp.get("top_logprobs") or []
            if not tops or not tops[0]:
                raise BackendError(f"{self.base_url} returned no top_logprobs")
            return sorted(((t, float(v)) for t, v in tops[0].items()), key=lambda x: -x[1])
        content = lp.get("content") or []
        if not content or not content[0].get("top_logprobs"):
            raise BackendError(f"{self.base_url} returned no top_logprobs")
        return [(c["token"], float(c["logprob"])) for c in content[0]["top_logprobs"]]

    def top_logprobs(self, prompts: list[ChatPrompt], k: int) -> list[list[tuple[str, float]]]:
        if not self.capabilities.top_logprobs:
            raise BackendError("this backend is configured without log-probabilities (logprobs: false)")

        def job(p: ChatPrompt):
            async def run(client: httpx.AsyncClient) -> list[tuple[str, float]]:
                path, body = self._body(p, 1, 0.0, 1.0, [], 0, k)
                return self._top(await self._post(client, path, body))[:k]
            return run

        return self._gather([job(p) for p in prompts], "top_logprobs")

    def score_choices(self, prompts: list[ChatPrompt], choices: list[str]) -> list[list[float]]:
        tops = self.top_logprobs(prompts, TOP_K_FOR_CHOICES)
        out = []
        for top in tops:
            row = []
            for c in choices:
                best = None
                for tok, lp in top:
                    if tok and c.startswith(tok) and (tok.strip() or not c.strip()):
                        if best is None or len(tok) > len(best[0]):
                            best = (tok, lp)
                row.append(best[1] if best else -math.inf)
            out.append(row)
        return out
