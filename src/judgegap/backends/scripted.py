"""A scripted model: deterministic rule-based replies and log-probabilities, no weights.

Like inspect_ai's ``mockllm`` and lm-evaluation-harness's ``dummy`` model, it lets a user
dry-run a config end to end in seconds (every experiment, the store, the report) and lets
tests exercise the pipeline without a hand-rolled fake. Every output is a pure function of
the prompt and the script, so the call cache and ``--resume`` behave exactly as with a real
model.

``model`` names a behaviour (``script`` in the config refines it):

- ``span`` — answers with a few words of the passage chosen by a hash of the prompt;
- ``abstain`` — always answers "unanswerable";
- ``constant`` — always answers ``script.answer`` (an author that never changes its mind);
- ``copy`` — answers with the rest of the line after the first ``script.marker`` in the prompt
  (an agent that always adopts another's answer; default marker "Answer from another agent:"),
  and like ``span`` where the prompt has no marker;
- ``p_yes`` (script) — the probability the judge gives the first choice (" Yes", " A", ...);
  a number, or ``"hash"`` (default) for a prompt-dependent value in (0, 1);
- ``latency_s`` (script) — seconds to sleep per call (for interruption tests);
- ``prefix_cache`` (script) — declare the capability llamacpp has (keeps the last prompt's KV state),
  so a dry run orders its calls as it would on llama.cpp (item by item).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from typing import Any

from judgegap.backends.base import BACKENDS, Backend, Capabilities, ChatPrompt, Completion, GenRequest
from judgegap.errors import BackendError

BEHAVIOURS = ("span", "abstain", "constant", "copy")


def _h(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:8], "big")


def _unit(*parts: str) -> float:
    """A deterministic number in (0, 1) from the parts."""
    return (_h(*parts) % 1_000_000 + 0.5) / 1_000_000


@BACKENDS.register("scripted")
class ScriptedBackend(Backend):
    backend_name = "scripted"
    capabilities = Capabilities(attention=False)

    def __init__(self, model: str = "span", *, script: dict[str, Any] | None = None, **_: Any) -> None:
        if model not in BEHAVIOURS:
            raise BackendError(f"scripted model {model!r} unknown (behaviours: {', '.join(BEHAVIOURS)})")
        self.behaviour = model
        self.script = dict(script or {})
        unknown = set(self.script) - {"answer", "p_yes", "latency_s", "seed", "marker", "prefix_cache"}
        if unknown:
            raise BackendError(f"scripted: unknown script key(s) {', '.join(sorted(unknown))}"
                               " (answer, p_yes, latency_s, seed, marker, prefix_cache)")
        if self.script.get("prefix_cache"):
            from dataclasses import replace

            self.capabilities = replace(type(self).capabilities, prefix_cache=True)
        if model == "constant" and not isinstance(self.script.get("answer"), str):
            raise BackendError("scripted model 'constant' needs script.answer (a string)")
        p_yes = self.script.get("p_yes", "hash")
        if p_yes != "hash" and not (isinstance(p_yes, (int, float)) and 0 < p_yes < 1):
            raise BackendError(f"scripted: script.p_yes must be a number in (0, 1) or 'hash', got {p_yes!r}")
        self.calls = {"generate": 0, "score_choices": 0, "top_logprobs": 0}

    def fingerprint(self) -> dict[str, Any]:
        return {"scripted": self.behaviour,
                "script": {k: v for k, v in self.script.items() if k not in ("latency_s", "prefix_cache")}}

    def stats(self) -> dict[str, Any]:
        return {"calls": dict(self.calls)}

    def _pause(self, n: int) -> None:
        lat = float(self.script.get("latency_s", 0.0))
        if lat > 0:
            time.sleep(lat * n)

    @staticmethod
    def _text(p: ChatPrompt) -> str:
        return "\n".join(c for _, c in p.messages) + p.assistant_prefix

    def _answer(self, prompt: ChatPrompt) -> str:
        if self.behaviour == "abstain":
            return "unanswerable"
        if self.behaviour == "constant":
            return str(self.script["answer"])
        if self.behaviour == "copy":
            text = "\n".join(c for _, c in prompt.messages)
            marker = str(self.script.get("marker", "Answer from another agent:"))
            if marker in text:
                return text.split(marker, 1)[1].split("\n", 1)[0].strip()
        words = re.findall(r"[A-Za-z0-9][\w'-]*", self._text(prompt))
        if not words:
            return "unanswerable"
        k = _h(self._text(prompt), str(self.script.get("seed", 0)))
        size = 1 + k % 3
        start = (k // 7) % max(1, len(words) - size)
        return " ".join(words[start:start + size])

    def generate(self, requests: list[GenRequest]) -> list[Completion]:
        self.calls["generate"] += len(requests)
        self._pause(len(requests))
        out = []
        for r in requests:
            text = self._answer(r.prompt)
            if r.temperature > 0:  # sampling: a different span per seed
                text = self._answer(ChatPrompt(r.prompt.messages, r.prompt.assistant_prefix + f"#{r.seed}"))
            toks = text.split(" ")[: r.max_new_tokens]
            text = " ".join(toks)
            out.append(Completion(text=text, tokens=toks, token_logprobs=[-0.1] * len(toks),
                                  n_prompt_tokens=len(self._text(r.prompt).split()),
                                  finish_reason="stop" if len(toks) < r.max_new_tokens else "length"))
        return out

    def _p_first(self, prompt: ChatPrompt) -> float:
        p = self.script.get("p_yes", "hash")
        return float(p) if p != "hash" else _unit("p", self._text(prompt), str(self.script.get("seed", 0)))

    def score_choices(self, prompts: list[ChatPrompt], choices: list[str]) -> list[list[float]]:
        """Exact log-probabilities of whole choices under a stated distribution: the first
        choice gets p, the rest share 1 - p in proportion to a hash (sums to 1 over choices)."""
        self.calls["score_choices"] += len(prompts)
        self._pause(len(prompts))
        out = []
        for pr in prompts:
            p = self._p_first(pr)
            rest = [_unit("c", self._text(pr), c) for c in choices[1:]]
            tot = sum(rest) or 1.0
            probs = [p] + [(1 - p) * r / tot for r in rest] if len(choices) > 1 else [1.0]
            out.append([math.log(max(x, 1e-300)) for x in probs])
        return out

    def top_logprobs(self, prompts: list[ChatPrompt], k: int) -> list[list[tuple[str, float]]]:
        self.calls["top_logprobs"] += len(prompts)
        vocab = [" Yes", " No", " A", " B", " 1", " 2", " 3", " 4", " 5", " 6", " 7", " 8", " 9", " 10"]
        out = []
        for pr in prompts:
            w = [_unit("t", self._text(pr), t) for t in vocab]
            z = sum(w)
            ranked = sorted(((t, math.log(x / z)) for t, x in zip(vocab, w)), key=lambda x: -x[1])
            out.append(ranked[:k])
        return out
