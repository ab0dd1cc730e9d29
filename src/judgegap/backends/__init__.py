"""Model backends behind one protocol: ``hf`` (local transformers) and ``openai`` (servers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from judgegap.backends.base import BACKENDS, Backend, Capabilities, ChatPrompt, Completion, GenRequest
from judgegap.backends.cached import CachedBackend

# built-ins by name; imported when a config uses them (torch only loads with the hf backend's model)
BACKENDS.add_lazy("hf", "judgegap.backends.hf:HFBackend")
BACKENDS.add_lazy("openai", "judgegap.backends.openai_compat:OpenAIBackend")
BACKENDS.add_lazy("scripted", "judgegap.backends.scripted:ScriptedBackend")
BACKENDS.add_lazy("llamacpp", "judgegap.backends.llamacpp:LlamaCppBackend")
BACKENDS.add_lazy("file", "judgegap.backends.file:FileBackend")

if TYPE_CHECKING:
    from judgegap.config import ModelConfig


def make_backend(cfg: ModelConfig) -> Backend:
    """Instantiate the configured backend (model loading happens here)."""
    cls = BACKENDS.get(cfg.backend)
    return cls(**cfg.model_dump(exclude={"name", "backend", "generation"}))


__all__ = ["BACKENDS", "Backend", "CachedBackend", "Capabilities", "ChatPrompt", "Completion", "GenRequest",
           "make_backend"]
