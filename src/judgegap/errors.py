"""User-facing errors.

Every problem a user can cause (bad file, bad config, unknown name) is raised as a
``JudgegapError`` carrying one line of explanation; the CLI prints that line and exits
non-zero instead of showing a traceback.
"""

from __future__ import annotations

from typing import Any


class JudgegapError(Exception):
    """An error caused by user input, reported as one clear line."""

    exit_code: int = 1


class ConfigError(JudgegapError):
    """Invalid experiment configuration (exit code 2, like a usage error)."""

    exit_code = 2


class DataError(JudgegapError):
    """A dataset file is missing, truncated or not in the expected schema."""


class BackendError(JudgegapError):
    """A model backend cannot be loaded or cannot serve a request."""


class Interrupted(JudgegapError):
    """The user pressed Ctrl-C (SIGINT) or the process got SIGTERM: stop, keep what is stored."""

    exit_code = 130


_INTERRUPT = {"seen": False}
INTERRUPT_MESSAGE = "interrupted: completed model calls are stored; rerun with --resume to continue"


def mark_interrupted() -> None:
    """Record that a signal arrived (the CLI's handler calls this before raising :class:`Interrupted`)."""
    _INTERRUPT["seen"] = True


def raise_if_interrupted() -> None:
    """For backends whose native code catches exceptions raised during a call (llama.cpp's server
    returns them as an error reply): turn a failure that follows a signal back into Interrupted,
    so the run is marked interrupted, not failed."""
    if _INTERRUPT["seen"]:
        raise Interrupted(INTERRUPT_MESSAGE)


def json_kind(v: object) -> str:
    """How a JSON value is named in an error line ("null", "a number", "a list", ...)."""
    return "null" if v is None else {str: "a string", int: "a number", float: "a number", bool: "a boolean",
                                     list: "a list", dict: "an object"}.get(type(v), type(v).__name__)


def redact_secrets(text: str) -> str:
    """Remove the values of API-key environment variables from text about to be shown.

    Servers sometimes echo the key back in an error body; no message may carry it."""
    import os
    import re

    for name, value in os.environ.items():
        if value and len(value) >= 8 and re.search(r"(API_?KEY|TOKEN|SECRET)", name, re.I) and value in text:
            text = text.replace(value, "***")
    return re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}", r"\1***", text)


def first_error(exc: Any) -> tuple[str, str]:
    """(dotted field location, message) of a pydantic ValidationError's first error: the one line
    a config, params, record or summary problem is reported as."""
    err = exc.errors()[0]
    return ".".join(str(x) for x in err["loc"]), err["msg"]
