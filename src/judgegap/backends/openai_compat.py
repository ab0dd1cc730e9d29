"""OpenAI-compatible servers (vLLM, SGLang, llama.cpp, hosted APIs) behind the backend protocol.

- Async requests with bounded concurrency; timeouts; retries with exponential backoff and
  jitter on 429 / 5xx / connection errors / unparseable replies, honouring ``Retry-After``.
  Retries are counted and reported in the run summary.
- The API key comes from an environment variable named in the config; it is sent as a
  header and never logged, stored, or put in a cache key.
- ``score_choices`` is the log-probability of the WHOLE choice, always. Where the server echoes
  prompt log-probabilities (``/completions`` with ``echo``: vLLM, SGLang, llama-cpp-python's
  server, OpenAI's legacy models — the way lm-evaluation-harness scores continuations), the
  prompt + choice is sent and the choice tokens' log-probs are summed. Otherwise the one-token
  ``top_logprobs`` list is used, and only where it is exact: a choice returned verbatim as one
  token; a choice of which only a prefix token is listed (" 10" when " 1" is) cannot be
  delivered and raises, instead of reading " 10" as " 1" (which made a self-score of 1 read
  as 10). A choice absent from the top list is below the k-th token: -inf, counted in stats.
- ``endpoint: completions`` sends a rendered prompt: with ``tokenizer`` set (a built-in
  model name, folder or hub id) the model's own chat template renders it, exactly as the
  ``hf`` backend does; otherwise plain text. ``endpoint: chat`` lets the server render.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from judgegap.backends.base import BACKENDS, Backend, Capabilities, ChatPrompt, Completion, GenRequest, token_extensions
from judgegap.errors import BackendError, redact_secrets

TOP_K_FOR_CHOICES = 20
log = logging.getLogger("judgegap.openai")


class _Malformed(Exception):
    """A 200 reply whose body is not what the API promises."""


def _num(x: Any) -> float:
    """A log-probability as the API promises it: a JSON number (never a string or null)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise _Malformed(f"log-probability {x!r} is not a number")
    return float(x)


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
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0, echo: bool | None = None,
                 **_: Any) -> None:
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
                                         multi_token_choices=logprobs and echo is not False)
        self.echo = echo  # None: find out on the first score_choices call
        self.choices_below_topk = 0
        self.retries = 0
        self.retry_after_capped = 0
        self.failures: dict[str, int] = {}
        self.requests = 0
        self._choice_tokens: dict[tuple[str, tuple[str, ...]], list[list[str]]] = {}

    @classmethod
    def capabilities_for(cls, cfg: Any) -> Capabilities:
        lp = bool(getattr(cfg, "logprobs", True))
        echo = getattr(cfg, "echo", None)
        return Capabilities(logprobs=lp, score_choices=lp, top_logprobs=lp,
                            multi_token_choices=lp and echo is not False and getattr(cfg, "endpoint", "") != "chat")

    def fingerprint(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, "endpoint": self.endpoint,
                "tokenizer": self.tokenizer_ref}

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.retries, "retry_reasons": dict(self.failures),
                "echo": self.echo, "choices_below_topk": self.choices_below_topk,
                "retry_after_capped": self.retry_after_capped}

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
    def redact(self, text: str) -> str:
        """Remove the API key (and any bearer token) from text that may reach a message or log."""
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return redact_secrets(text)

    async def _post(self, client: httpx.AsyncClient, path: str, body: dict[str, Any],
                    retries: int | None = None,
                    parse: Callable[[dict[str, Any]], Any] | None = None) -> Any:
        """POST with a TOTAL deadline per attempt (a reply trickling one byte a second is cut off),
        capped retries with backoff, Retry-After honoured up to ``backoff_max_s``, and a 200 reply
        whose body is malformed (``parse`` fails) retried, then reported in one line."""
        max_retries = self.max_retries if retries is None else retries
        attempt = 0
        while True:
            try:
                self.requests += 1
                resp = await asyncio.wait_for(client.post(self.base_url + path, json=body), self.timeout_s)
                if resp.status_code in (401, 403):
                    raise BackendError(f"{self.base_url}: authentication failed (HTTP {resp.status_code});"
                                       " check the API key environment variable")
                if resp.status_code == 404:
                    raise BackendError(f"{self.base_url}{path}: not found (HTTP 404); wrong base_url or endpoint?")
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise _Retryable(f"http_{resp.status_code}", _retry_after(resp))
                if resp.status_code >= 400:
                    detail = " ".join(self.redact(resp.text[:200]).split())
                    raise BackendError(f"{self.base_url}{path}: HTTP {resp.status_code}: {detail}")
                try:
                    data = resp.json()
                    if not (isinstance(data, dict) and isinstance(data.get("choices"), list) and data["choices"]
                            and isinstance(data["choices"][0], dict)):
                        raise _Malformed("no choices list")
                    return parse(data) if parse else data
                except (ValueError, KeyError, IndexError, TypeError, AttributeError, _Malformed):
                    raise _Retryable("malformed_reply") from None
            except (asyncio.TimeoutError, httpx.TimeoutException):
                err: _Retryable = _Retryable("timeout")
            except httpx.TransportError:
                err = _Retryable("connection")
            except _Retryable as exc:
                err = exc
            self.failures[str(err)] = self.failures.get(str(err), 0) + 1
            if attempt >= max_retries:
                if str(err) == "connection":
                    raise BackendError(f"cannot reach {self.base_url} (server down?) after {attempt + 1} attempts")
                if str(err) == "timeout":
                    raise BackendError(f"{self.base_url}: no complete reply within timeout_s={self.timeout_s:g}s"
                                       f" after {attempt + 1} attempts; raise timeout_s or check the server")
                if str(err) == "malformed_reply":
                    raise BackendError(f"{self.base_url}{path}: the server's reply was malformed (not the OpenAI"
                                       f" completions schema, or log-probs missing / not numbers) after"
                                       f" {attempt + 1} attempts")
                raise BackendError(f"{self.base_url}: request failed after {attempt + 1} attempts ({err})")
            self.retries += 1
            backoff = min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt) * random.uniform(0.5, 1.0)
            delay = backoff
            if err.retry_after is not None:
                delay = min(err.retry_after, self.backoff_max_s)
                if err.retry_after > self.backoff_max_s:
                    self.retry_after_capped += 1
                    if self.retry_after_capped == 1:
                        log.warning("%s asked to wait %.0fs (Retry-After); waiting %.0fs (the configured maximum"
                                    " backoff) instead", self.base_url, err.retry_after, self.backoff_max_s)
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
                return await self._post(client, path, body, parse=self._completion)
            return run

        return self._gather([job(r) for r in requests], "generate")

    def _completion(self, data: dict[str, Any]) -> Completion:
        ch = data["choices"][0]
        text = ch.get("text") if self.endpoint == "completions" else (ch.get("message") or {}).get("content")
        if text is not None and not isinstance(text, str):
            raise _Malformed("completion text is not a string")
        toks, lps = [], []
        lp = ch.get("logprobs") or {}
        if self.endpoint == "completions" and lp.get("tokens"):
            toks, lps = list(lp["tokens"]), [_num(x) for x in lp.get("token_logprobs") or []]
        elif lp.get("content"):
            toks = [c["token"] for c in lp["content"]]
            lps = [_num(c["logprob"]) for c in lp["content"]]
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
        if self.endpoint == "completions" and not lp.get("content"):  # the legacy completions format
            tops = lp.get("top_logprobs") or []
            if not tops or not tops[0]:
                raise BackendError(f"{self.base_url} returned no top_logprobs")
            return sorted(((t, _num(v)) for t, v in tops[0].items()), key=lambda x: -x[1])
        # chat-style "content" (OpenAI chat; llama.cpp's server answers /completions this way too)
        content = lp.get("content") or []
        if not content or not content[0].get("top_logprobs"):
            raise BackendError(f"{self.base_url} returned no top_logprobs")
        return [(c["token"], _num(c["logprob"])) for c in content[0]["top_logprobs"]]

    def top_logprobs(self, prompts: list[ChatPrompt], k: int) -> list[list[tuple[str, float]]]:
        if not self.capabilities.top_logprobs:
            raise BackendError("this backend is configured without log-probabilities (logprobs: false)")

        def job(p: ChatPrompt):
            async def run(client: httpx.AsyncClient) -> list[tuple[str, float]]:
                path, body = self._body(p, 1, 0.0, 1.0, [], 0, k)
                return (await self._post(client, path, body, parse=self._top))[:k]
            return run

        return self._gather([job(p) for p in prompts], "top_logprobs")

    def score_choices(self, prompts: list[ChatPrompt], choices: list[str]) -> list[list[float]]:
        if not self.capabilities.score_choices:
            raise BackendError("this backend is configured without log-probabilities (logprobs: false)")
        if prompts and self._uses_echo(prompts[0], choices[0]):
            return self._score_echo(prompts, choices)
        return self._score_top(prompts, choices)

    def _uses_echo(self, prompt: ChatPrompt, choice: str) -> bool:
        if self.endpoint == "completions" and self.echo is not False:
            if self.echo is None:
                self.echo = bool(self.memo("probe:echo", {"probe": "echo"}, lambda: self._echo_works(prompt, choice)))
            return bool(self.echo)
        return False

    def choice_extensions(self, prompt: ChatPrompt, choices: list[str]) -> list[list[int]]:
        """Which choices' *server* tokens begin with another choice's tokens. Through echo: the tokens
        the server itself returned for each choice after this prompt (recorded when scored, kept in
        the call cache): " 10" extends " 1" where it is " 1" + "0", not where it is one token (Llama-3
        style tokenizers), which a string-prefix rule would get wrong and under-read P(score 1).
        Through the top list every choice read is one verbatim token, so none extends another."""
        if not (choices and self._uses_echo(prompt, choices[0])):
            return [[] for _ in choices]
        text = self.render(prompt)
        key = (text, tuple(choices))
        toks = self._choice_tokens.get(key)
        if toks is None:
            toks = self.memo("choice_tokens", {"text": text, "choices": list(choices)},
                             lambda: self._score_echo_full([text], choices)[1][0])
            self._choice_tokens[key] = toks
        return token_extensions([list(t) for t in toks])

    # -- exact scoring through echoed prompt log-probs ---------------------------------------
    def _echo_body(self, text: str) -> dict[str, Any]:
        # max_tokens 1, not 0: llama-cpp-python reads max_tokens <= 0 as "until the context ends"
        return {"model": self.model, "prompt": text, "max_tokens": 1, "temperature": 0.0, "echo": True,
                "logprobs": 1}

    def _echo_lp(self, data: dict[str, Any], prompt_len: int, full_len: int, choice: str) -> float:
        return self._echo_lp_tokens(data, prompt_len, full_len, choice)[0]

    def _echo_lp_tokens(self, data: dict[str, Any], prompt_len: int, full_len: int,
                        choice: str) -> tuple[float, list[str]]:
        """(log P(choice), the server's tokens of the choice) from an echo reply."""
        lp = data["choices"][0].get("logprobs") or {}
        toks, tlps, offs = lp.get("tokens"), lp.get("token_logprobs"), lp.get("text_offset")
        if not (isinstance(toks, list) and isinstance(tlps, list) and isinstance(offs, list)
                and len(toks) == len(tlps) == len(offs)):
            raise _Malformed("echo reply without tokens / token_logprobs / text_offset of equal length")
        total, covered, pieces = 0.0, 0, []
        for tok, lpv, off in zip(toks, tlps, offs):
            if not isinstance(off, int) or not isinstance(tok, str):
                raise _Malformed("echo reply with a non-integer text_offset")
            end = off + len(tok)
            if off >= full_len:
                break  # the generated token after the echo
            if end <= prompt_len:
                continue
            if off < prompt_len:
                raise BackendError(f"{self.base_url}: the server's tokens straddle the end of the prompt and the"
                                   f" start of choice {choice!r}; its log-probability cannot be read exactly")
            if not isinstance(lpv, (int, float)):
                raise _Malformed("echo reply with a non-numeric token log-probability")
            total += float(lpv)
            covered += len(tok)
            pieces.append(tok)
        if covered == 0:
            raise _Malformed(f"echo reply holds no tokens of choice {choice!r}")
        return total, pieces

    def _echo_works(self, prompt: ChatPrompt, choice: str) -> bool:
        """Does the server echo prompt log-probabilities? Asked once with one real request (cached
        with the calls); its failures are not counted as retries of the run's own requests."""
        text = self.render(prompt)
        counters = (self.requests, self.retries, dict(self.failures))

        async def probe(client: httpx.AsyncClient) -> bool:
            try:
                await self._post(client, "/completions", self._echo_body(text + choice), retries=0,
                                 parse=lambda d: self._echo_lp(d, len(text), len(text + choice), choice))
                return True
            except BackendError as exc:
                if "authentication" in str(exc) or "cannot reach" in str(exc):
                    raise
                return False

        try:
            return bool(self._gather([probe], "echo-probe")[0])
        finally:
            self.requests, self.retries, self.failures = counters[0] + 1, counters[1], counters[2]

    def _score_echo(self, prompts: list[ChatPrompt], choices: list[str]) -> list[list[float]]:
        texts = [self.render(p) for p in prompts]
        lps, toks = self._score_echo_full(texts, choices)
        for text, t in zip(texts, toks):  # what choice_extensions reads, kept with the calls
            self._choice_tokens[(text, tuple(choices))] = t
            self.memo("choice_tokens", {"text": text, "choices": list(choices)}, lambda t=t: t)
        return lps

    def _score_echo_full(self, texts: list[str], choices: list[str]) -> tuple[list[list[float]], list[list[list[str]]]]:
        def job(text: str, c: str):
            async def run(client: httpx.AsyncClient) -> tuple[float, list[str]]:
                return await self._post(client, "/completions", self._echo_body(text + c),
                                        parse=lambda d: self._echo_lp_tokens(d, len(text), len(text + c), c))
            return run

        flat = self._gather([job(t, c) for t in texts for c in choices], "score_choices")
        k = len(choices)
        rows = [flat[i * k:(i + 1) * k] for i in range(len(texts))]
        return [[lp for lp, _ in r] for r in rows], [[tk for _, tk in r] for r in rows]

    # -- single-token scoring from the top list, where it is exact ----------------------------
    def _score_top(self, prompts: list[ChatPrompt], choices: list[str]) -> list[list[float]]:
        tops = self.top_logprobs(prompts, TOP_K_FOR_CHOICES)
        out = []
        for top in tops:
            listed = dict(top)
            row = []
            for c in choices:
                if c in listed:
                    row.append(listed[c])
                    continue
                prefix = [t for t in listed if t and c.startswith(t) and t != c]
                if prefix:
                    raise BackendError(
                        f"{self.base_url}: choice {c!r} is not one token in the server's top log-probs (its prefix"
                        f" {prefix[0]!r} is), and the server does not echo prompt log-probs, so P({c!r}) cannot be"
                        " read exactly; use a server with echo (vLLM, SGLang, llama-cpp-python) or single-token"
                        " choices")
                self.choices_below_topk += 1
                row.append(-math.inf)
            out.append(row)
        return out
