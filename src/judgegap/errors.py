"""User-facing errors.

Every problem a user can cause (bad file, bad config, unknown name) is raised as a
``JudgegapError`` carrying one line of explanation; the CLI prints that line and exits
non-zero instead of showing a traceback.
"""

from __future__ import annotations


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
