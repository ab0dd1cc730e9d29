"""Dataset registry and the file lookup every loader shares.

A dataset is registered with the file names it is known under (the official name
first, then well-known public subsets in the same schema). Files are looked up in the
data directory and one level of sub-folders below it, plain or gzipped, so a user can
point ``JUDGEGAP_DATA_DIR`` at a folder of downloads without renaming anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgegap.errors import DataError
from judgegap.registry import Registry

DATA_DIR_ENV = "JUDGEGAP_DATA_DIR"


def default_data_dir() -> Path:
    """``$JUDGEGAP_DATA_DIR`` if set, else the user cache where ``data download`` writes."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "judgegap" / "data"


@dataclass(frozen=True)
class DatasetSpec:
    """Everything judgegap knows about one dataset."""

    name: str
    description: str
    filenames: tuple[str, ...]
    parse: Callable[[Path], list[Any]]
    metric: str
    kind: str = "qa"  # "qa" (QAItem, in-context QA) or "pairs" (PairItem, pairwise preference)
    url: str | None = None
    url_member: str | None = None  # file inside a downloaded zip archive
    citation: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def find_file(self, data_dir: Path | None = None) -> Path:
        """Locate the dataset file under ``data_dir`` (or raise one clear line)."""
        root = Path(data_dir) if data_dir else default_data_dir()
        if not root.is_dir():
            raise DataError(
                f"data directory not found: {root} (set {DATA_DIR_ENV} or data_dir in the config,"
                f" or run `judgegap data download {self.name}`)"
            )
        for fname in self.filenames:
            for cand in (fname, fname + ".gz"):
                hits = [root / cand] + sorted(root.glob(f"*/{cand}"))
                for h in hits:
                    if h.is_file():
                        return h
        names = ", ".join(self.filenames)
        raise DataError(
            f"no {self.name} file ({names}, optionally .gz) under {root} or its sub-folders;"
            f" run `judgegap data download {self.name}` or pass data_file"
        )

    def load(self, data_dir: Path | None = None, data_file: Path | None = None) -> list[Any]:
        path = Path(data_file) if data_file else self.find_file(data_dir)
        items = self.parse(path)
        if not items:
            raise DataError(f"{path}: contains no {self.name} {'pairs' if self.kind == 'pairs' else 'questions'}")
        return items


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.add(spec.name, spec)
    return spec
