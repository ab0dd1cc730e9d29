"""LoRA adapters as judgegap writes and reads them.

A trained adapter is a PEFT directory (``adapter_config.json`` + ``adapter_model.safetensors``)
plus ``judgegap_adapter.json``: the base model it was trained on (built-in name and weights
fingerprint), the method, seed, and the ids and passage hashes of every training item. The
last part is what lets any later run refuse to evaluate on an item the adapter was trained on.
Kept free of torch/peft imports except where weights are applied, so validating a config stays fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from judgegap.errors import BackendError, ConfigError

META_FILE = "judgegap_adapter.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


# Deprecations raised inside our dependencies, about their code, on every LoRA wrap or load: peft's
# PeftModel and trl read ``model.is_gradient_checkpointing``, and trl's GRPOConfig sets
# ``gradient_checkpointing`` and calls ``gradient_checkpointing_enable/disable``, all renamed to
# ``activation_checkpointing*`` in transformers 5. A user can do nothing about them, and they buried the
# training output. judgegap's own TrainingArguments use the new name (tested without this filter).
DEPENDENCY_DEPRECATIONS = (r"`is_gradient_checkpointing` is deprecated",
                           r"`gradient_checkpointing(_enable|_disable)?` is deprecated")


@contextlib.contextmanager
def dependency_deprecations_quiet() -> Iterator[None]:
    """Silence only :data:`DEPENDENCY_DEPRECATIONS` (FutureWarning) inside the block; every other warning stays."""
    with warnings.catch_warnings():
        for message in DEPENDENCY_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message, category=FutureWarning)
        yield


def passage_hash(context: str) -> str:
    """A passage's identity for the train/test overlap check (whitespace-normalised)."""
    return hashlib.sha256(" ".join(context.split()).encode("utf-8")).hexdigest()[:16]


def adapter_dir_problem(path: Path) -> str | None:
    """Why ``path`` is not a loadable adapter directory, or None."""
    if not path.exists():
        return f"adapter not found: {path}"
    if not path.is_dir():
        return f"adapter must be a directory (PEFT save_pretrained output), got a file: {path}"
    if not (path / "adapter_config.json").is_file():
        return f"{path}: not a PEFT adapter (no adapter_config.json)"
    if not any((path / w).is_file() for w in WEIGHT_FILES):
        return f"{path}: adapter has no weights ({' or '.join(WEIGHT_FILES)})"
    return None


def read_meta(path: Path) -> dict[str, Any]:
    """judgegap's metadata for an adapter ({} for adapters trained elsewhere)."""
    f = path / META_FILE
    if not f.is_file():
        return {}
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{f}: unreadable adapter metadata: {exc}") from None
    return meta if isinstance(meta, dict) else {}


def adapter_fingerprint(path: Path) -> str:
    """Hash of the adapter's weights and canonical config (part of the call-cache key of a tuned model).

    The config is hashed as canonical JSON, not as bytes: peft writes ``target_modules`` from a set,
    so its order changes from process to process (string hashing is randomised), and
    ``base_model_name_or_path`` is a machine-local path (the base's identity is checked and keyed
    separately). Hashing the bytes made the same adapter, saved again by ``--resume``, miss every
    cached call of its evaluation.
    """
    h = hashlib.sha256()
    for w in WEIGHT_FILES:
        f = path / w
        if f.is_file():
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    h.update(canonical_adapter_config(path / "adapter_config.json").encode())
    return h.hexdigest()[:16]


def canonical_adapter_config(file: Path) -> str:
    """adapter_config.json with set-valued fields sorted and the local base path dropped."""
    cfg = json.loads(file.read_text())
    cfg.pop("base_model_name_or_path", None)
    for k in ("target_modules", "modules_to_save", "exclude_modules"):
        if isinstance(cfg.get(k), list):
            cfg[k] = sorted(cfg[k])
    return json.dumps(cfg, sort_keys=True)


def check_base(path: Path, base_fp: str, base_ref: str) -> None:
    """Refuse an adapter judgegap trained on another base model (its weights fingerprint differs)."""
    meta = read_meta(path)
    want = meta.get("base_weights")
    if want and want != base_fp:
        raise ConfigError(f"adapter {path} was trained on base model {meta.get('base_model', '?')!r}"
                          f" (weights {want}), not on {base_ref!r} (weights {base_fp})")


def checked_adapter(path: Path, base_fp: str, base_ref: str) -> str:
    """A backend's checks of an ``adapter:`` directory before loading it (loadable, trained on this base);
    returns its fingerprint (part of the tuned model's call-cache key)."""
    problem = adapter_dir_problem(path)
    if problem:
        raise BackendError(problem)
    check_base(path, base_fp, base_ref)
    return adapter_fingerprint(path)


def apply_adapter(model: Any, path: Path) -> Any:
    """Load the LoRA weights onto ``model`` and merge them (inference then costs what the base does)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise BackendError("adapters need peft: pip install 'judgegap[train]'") from None
    try:
        with dependency_deprecations_quiet():
            tuned = PeftModel.from_pretrained(model, str(path))
    except Exception as exc:  # noqa: BLE001 - shape mismatches etc. come as RuntimeError/ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"adapter {path} does not fit this base model: {first[:200]}") from None
    return tuned.merge_and_unload()
