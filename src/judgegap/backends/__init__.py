"""Model backends behind one protocol: ``hf`` (local transformers) and ``openai`` (servers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from judgegap.backends.base import BACKENDS, Backend, Capabilities, ChatPrompt, Completion, GenRequest
from judgegap.backends.cached import CachedBackend
from judgegap.backends import hf, openai_compat, scripted  # noqa: F401  (registration)

if TYPE_CHECKING:
    from judgegap.config import ModelConfig


def make_backend(cfg: ModelConfig) -> Backend:
    """Instantiate the configured backend (model loading happens here)."""
    cls = BACKENDS.get(cfg.backend)
    return cls(**cfg.model_dump(exclude={"name", "backend", "generation"}))


__all__ = ["BACKENDS", "Backend", "CachedBackend", "Capabilities", "ChatPrompt", "Completion", "GenRequest",
           "make_backend"]
