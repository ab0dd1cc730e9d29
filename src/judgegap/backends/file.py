"""``backend: file`` — a model that is only a set of answers read from a file.

Two-stage judging: the answers were produced elsewhere (lm-evaluation-harness ``--log_samples``,
an inspect_ai log, a predictions JSON) and other configured models judge them. Such a model
authors answers (through the model entry's ``answers:``) but makes no calls, so it can neither
judge nor score: every capability is off, and an experiment that would call it is refused at
config load (see :func:`judgegap.experiments.base.validate_experiments`).
"""

from __future__ import annotations

from typing import Any

from judgegap.backends.base import BACKENDS, Backend, Capabilities, ChatPrompt, Completion, GenRequest
from judgegap.errors import BackendError

NO_CALLS = Capabilities(generate=False, logprobs=False, score_choices=False, top_logprobs=False,
                        multi_token_choices=False, attention=False, prefix_cache=False)


@BACKENDS.register("file")
class FileBackend(Backend):
    backend_name = "file"
    capabilities = NO_CALLS

    def __init__(self, model: str = "", *, answers: Any = None, **_: Any) -> None:
        self.label = model
        self.answers = answers

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "file", "answers": str(self.answers)}

    def _refuse(self, what: str) -> BackendError:
        return BackendError(f"a 'file' model only supplies answers from {self.answers}; it cannot {what}")

    def generate(self, requests: list[GenRequest]) -> list[Completion]:
        raise self._refuse("generate")

    def score_choices(self, prompts: list[ChatPrompt], choices: list[str]) -> list[list[float]]:
        raise self._refuse("score choices (judge)")

    def top_logprobs(self, prompts: list[ChatPrompt], k: int) -> list[list[tuple[str, float]]]:
        raise self._refuse("list top tokens")
