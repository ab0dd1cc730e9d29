"""Reading dataset files (plain or gzip) with one clear error line per problem."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from judgegap.errors import DataError


def _open_text(path: Path) -> IO[str]:
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(f"expected a file but found a directory: {path}")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def read_json(path: Path) -> Any:
    """Load a whole JSON document, naming the file and position on failure."""
    try:
        with _open_text(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: not valid JSON (truncated or corrupt?) at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read file: {exc}") from None


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield one object per non-empty line of a JSON Lines file."""
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"{path}: line {lineno} is not valid JSON (truncated or corrupt?): {exc.msg}"
                    ) from None
                if not isinstance(obj, dict):
                    raise DataError(f"{path}: line {lineno} is not a JSON object")
                yield obj
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read file: {exc}") from None


def read_records(path: Path) -> list[dict[str, Any]]:
    """Read a file that is either a JSON array of objects or JSON Lines."""
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        return list(iter_jsonl(path))
    data = read_json(path)
    if isinstance(data, list):
        return data
    raise DataError(f"{path}: expected a JSON list of records, found {type(data).__name__}")


def require(cond: bool, path: Path, what: str) -> None:
    """Raise a schema error naming the file when ``cond`` is false."""
    if not cond:
        raise DataError(f"{path}: wrong schema: {what}")
