"""The one protocol every model backend implements.

Experiments only see this interface; every call goes through :class:`CachedBackend`
so it is cached in the results store and a killed run resumes where it stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from judgegap.registry import Registry


@dataclass(frozen=True)
class ChatPrompt:
    """A prompt as chat messages plus text the assistant turn starts with.

    Backends render it with the model's chat template when it has one (or as plain
    text for base models). Keeping shared content (instructions, passage, question)
    first lets the passage's KV prefix be reused across prompts of the same item.
    """

    messages: tuple[tuple[str, str], ...]
    assistant_prefix: str = ""

    @classmethod
    def of(cls, system: str | None, user: str, assistant_prefix: str = "") -> ChatPrompt:
        msgs: list[tuple[str, str]] = []
        if system:
            msgs.append(("system", system))
        msgs.append(("user", user))
        return cls(tuple(msgs), assistant_prefix)

    def to_dict(self) -> dict[str, Any]:
        return {"messages": [list(m) for m in self.messages], "assistant_prefix": self.assistant_prefix}

    def plain_text(self) -> str:
        """Rendering for models without a chat template."""
        parts = [content for _, content in self.messages]
        return "\n\n".join(parts) + "\n" + self.assistant_prefix


@dataclass(frozen=True)
class GenRequest:
    prompt: ChatPrompt
    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ("\n",)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prompt"] = self.prompt.to_dict()
        d["stop"] = list(self.stop)
        return d


@dataclass
class Completion:
    text: str
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    n_prompt_tokens: int = 0
    finish_reason: str = "stop"

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "tokens": self.tokens, "token_logprobs": self.token_logprobs,
                "n_prompt_tokens": self.n_prompt_tokens, "finish_reason": self.finish_reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Completion:
        return cls(text=d["text"], tokens=list(d.get("tokens", [])), token_logprobs=list(d.get("token_logprobs", [])),
                   n_prompt_tokens=int(d.get("n_prompt_tokens", 0)), finish_reason=d.get("finish_reason", "stop"))


@dataclass(frozen=True)
class Capabilities:
    generate: bool = True
    logprobs: bool = True
    score_choices: bool = True
    top_logprobs: bool = True
    multi_token_choices: bool = True
    attention: bool = False
    prefix_cache: bool = False  # keeps the last prompt's KV state: calls sharing a prefix should run back to back


class Backend(ABC):
    """A model that can generate, score candidate continuations and list top tokens."""

    backend_name: str = "base"
    capabilities: Capabilities = Capabilities()
    load_note: str | None = None  # one line the run prints after loading (e.g. faster kernels left unused)

    @staticmethod
    def memo(method: str, request: dict[str, Any], fn: Any) -> Any:
        """Compute a backend-internal fact; :class:`CachedBackend` replaces this with a cached one."""
        return fn()

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Everything about the model and decoding set-up that changes outputs (cache key)."""

    @abstractmethod
    def generate(self, requests: list[GenRequest]) -> list[Completion]:
        """Batched generation; one completion per request, in order."""

    @abstractmethod
    def score_choices(self, prompts: list[ChatPrompt], choices: list[str]) -> list[list[float]]:
        """log P(choice | prompt) for every choice, per prompt, without sampling."""

    @abstractmethod
    def top_logprobs(self, prompts: list[ChatPrompt], k: int) -> list[list[tuple[str, float]]]:
        """The k most likely next tokens after each prompt, with log-probabilities."""

    def choice_extensions(self, prompt: ChatPrompt, choices: list[str]) -> list[list[int]]:
        """For each choice i, the choices j whose tokens after ``prompt`` begin with all of i's tokens
        (so log P(choice i) from ``score_choices`` includes P(choice j)): " 10" extends " 1" in the
        digit-splitting tokenizers of the bundled models, but not where " 10" is one token. Backends
        that see the tokens answer from them; this default assumes a string prefix is a token prefix."""
        return [[j for j, d in enumerate(choices) if j != i and d.startswith(c)] for i, c in enumerate(choices)]

    @classmethod
    def capabilities_for(cls, model_cfg: Any) -> Capabilities:
        """What a backend configured like ``model_cfg`` can deliver (checked at config load)."""
        return cls.capabilities

    def stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def common_prefix_length(a: list[int], b: list[int]) -> int:
    """How many leading token ids two prompts share: what a KV-cache backend can reuse between them."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def token_extensions(conts: list[list[int]]) -> list[list[int]]:
    """choice_extensions from each choice's continuation token ids (strict token prefixes)."""
    return [[j for j, d in enumerate(conts) if j != i and len(d) > len(c) and d[:len(c)] == c]
            for i, c in enumerate(conts)]


BACKENDS: Registry[type[Backend]] = Registry("backend")
