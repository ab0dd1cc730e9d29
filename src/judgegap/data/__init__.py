"""Dataset loaders: each registers by name and yields :class:`QAItem`."""

from __future__ import annotations

from pathlib import Path

from judgegap.data import drop, hotpotqa, musique, pairs, squad2  # noqa: F401  (registration)
from judgegap.data.pairs import PairItem
from judgegap.data.registry import DATA_DIR_ENV, DATASETS, DatasetSpec, default_data_dir, register_dataset
from judgegap.data.sampling import stratified_sample
from judgegap.data.types import QAItem


def load_dataset(
    name: str,
    data_dir: Path | None = None,
    data_file: Path | None = None,
    n: int | None = None,
    seed: int = 0,
    answerable: bool | None = None,
    question_types: list[str] | None = None,
    stratify: bool = True,
) -> list[QAItem]:
    """Load a registered dataset, filter it, and draw a deterministic stratified sample."""
    items = DATASETS.get(name).load(data_dir=data_dir, data_file=data_file)
    if answerable is not None:
        items = [it for it in items if it.answerable == answerable]
    if question_types:
        wanted = set(question_types)
        items = [it for it in items if str(it.metadata.get("question_type", "")) in wanted]
    return stratified_sample(items, n, seed, key=(lambda it: it.stratum) if stratify else None)


__all__ = ["DATASETS", "DATA_DIR_ENV", "DatasetSpec", "PairItem", "QAItem", "default_data_dir", "load_dataset",
           "register_dataset", "stratified_sample"]
