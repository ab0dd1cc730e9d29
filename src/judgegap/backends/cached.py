"""Route every backend call through the results store.

Requests already answered (same backend, model fingerprint, method and parameters)
come from SQLite; the rest go to the model in chunks, each chunk committed as soon as
it is done, so ``kill -9`` loses at most one chunk of work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from judgegap.backends.base import Backend, ChatPrompt, Completion, GenRequest
from judgegap.store import call_key
from judgegap.store.calls import CallCache

T = TypeVar("T")
R = TypeVar("R")


class CachedBackend:
    """Same methods as :class:`Backend`, answered from the store where possible."""

    def __init__(self, backend: Backend, store: CallCache, label: str, chunk_size: int = 16,
                 progress: Callable[[int], None] | None = None) -> None:
        self.backend = backend
        self.store = store
        self.label = label
        self.chunk_size = chunk_size
        self.progress = progress
        self._fp = backend.fingerprint()
        backend.memo = self.memo  # capability probes are cached too, so --resume repeats no request

    def memo(self, method: str, request: dict[str, Any], fn: Callable[[], Any]) -> Any:
        """A backend-internal fact (e.g. "does this server echo prompt log-probs?") computed once
        and kept in the call cache like any model call."""
        key = call_key(self.backend.backend_name, self._fp, method, request)
        got = self.store.get_calls([key])
        if key in got:
            return got[key]["result"]
        res = fn()
        self.store.put_calls([(key, self.backend.backend_name, self.label, method, request, {"result": res}, 0.0)])
        return res

    def choice_extensions(self, prompt: ChatPrompt, choices: list[str]) -> list[list[int]]:
        """From the tokenizer (no model call), so it is not cached."""
        return self.backend.choice_extensions(prompt, choices)

    @property
    def capabilities(self):
        return self.backend.capabilities

    def _run(self, method: str, requests: Sequence[T], to_json: Callable[[T], dict[str, Any]],
             call: Callable[[list[T]], list[R]], enc: Callable[[R], Any], dec: Callable[[Any], R]) -> list[R]:
        keys = [call_key(self.backend.backend_name, self._fp, method, to_json(r)) for r in requests]
        cached = self.store.get_calls(set(keys))
        out: list[R | None] = [None] * len(requests)
        todo: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            if k in cached:
                out[i] = dec(cached[k]["result"])
            else:
                todo.setdefault(k, []).append(i)
        if self.progress and len(requests) - sum(len(v) for v in todo.values()):
            self.progress(len(requests) - sum(len(v) for v in todo.values()))
        pending = list(todo.items())
        for start in range(0, len(pending), self.chunk_size):
            chunk = pending[start:start + self.chunk_size]
            t0 = time.perf_counter()
            results = call([requests[idx[0]] for _, idx in chunk])
            elapsed = (time.perf_counter() - t0) / max(len(chunk), 1)
            rows = []
            for (k, idx), res in zip(chunk, results):
                for i in idx:
                    out[i] = res
                rows.append((k, self.backend.backend_name, self.label, method,
                             to_json(requests[idx[0]]), {"result": enc(res)}, elapsed))
            self.store.put_calls(rows)
            if self.progress:
                self.progress(sum(len(idx) for _, idx in chunk))
        return out  # type: ignore[return-value]

    def generate(self, requests: list[GenRequest]) -> list[Completion]:
        return self._run("generate", requests, lambda r: r.to_dict(), self.backend.generate,
                         lambda c: c.to_dict(), Completion.from_dict)

    def score_choices(self, prompts: list[ChatPrompt], choices: list[str]) -> list[list[float]]:
        return self._run(
            "score_choices", prompts, lambda p: {"prompt": p.to_dict(), "choices": list(choices)},
            lambda ps: self.backend.score_choices(ps, choices), lambda x: x, lambda x: [float(v) for v in x])

    def top_logprobs(self, prompts: list[ChatPrompt], k: int) -> list[list[tuple[str, float]]]:
        return self._run(
            "top_logprobs", prompts, lambda p: {"prompt": p.to_dict(), "k": k},
            lambda ps: self.backend.top_logprobs(ps, k), lambda x: [list(t) for t in x],
            lambda x: [(str(t), float(v)) for t, v in x])
