"""A run directory has one writer, belongs to one config, and only loses files judgegap wrote.

- **One writer**: an advisory ``flock`` on ``DIR/.judgegap.lock`` is held for the whole
  run (and while a report is rebuilt). The OS releases it when the process dies, even on
  ``kill -9``, so a stale lock never blocks a rerun, and a ``running`` run whose lock is
  free is known to have been interrupted.
- **One config**: the run stores a hash of the config fields that change results (all but
  ``output_dir``); ``--resume`` with a different config is refused with the changed fields.
- **Only our files**: ``DIR/.judgegap-manifest`` lists every file judgegap wrote there;
  ``--overwrite`` removes those and nothing else.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from judgegap.errors import JudgegapError

LOCK_NAME = ".judgegap.lock"
MANIFEST_NAME = ".judgegap-manifest"
RESULT_FILES = ("results.jsonl", "summary.json", "report.html")
IGNORED_FOR_HASH = ("output_dir", "call_cache")  # where things are written never changes results


# how a model is driven, never what it computes: llama.cpp's threads split rows, not sums (and are not in
# its call fingerprint either), a server's concurrency / timeout / retries only pace the same requests.
# A run stopped on one machine resumes on one with more cores, or with a patient server, as the same run.
EXECUTION_ONLY_MODEL_FIELDS = ("n_threads", "concurrency", "timeout_s", "max_retries", "api_key_env")


def result_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a config that can change results (what the hash and ``--resume``'s check cover)."""
    out = {k: v for k, v in config.items() if k not in IGNORED_FOR_HASH}
    if isinstance(out.get("models"), list):
        out["models"] = [{k: v for k, v in m.items() if k not in EXECUTION_ONLY_MODEL_FIELDS}
                         if isinstance(m, dict) else m for m in out["models"]]
    return out


def config_hash(config: dict[str, Any]) -> str:
    payload = json.dumps(result_config(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``field: old -> new`` for every result-changing field that differs."""
    a, b = _flatten(result_config(old)), _flatten(result_config(new))
    out = []
    for k in sorted(set(a) | set(b), key=lambda s: (s.split(".")[0], s)):
        if a.get(k, "<unset>") != b.get(k, "<unset>"):
            out.append(f"{k}: {json.dumps(a.get(k, '<unset>'), default=str)} -> {json.dumps(b.get(k, '<unset>'), default=str)}")
    return out


class RunLock:
    """Exclusive advisory lock on a run directory (released by the OS if the process dies)."""

    def __init__(self, out: Path, purpose: str = "run") -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JudgegapError(f"output dir is not writable: {self.out} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace")
            os.close(fd)
            raise _in_use(self.out, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {self.purpose}".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _in_use(out: Path, holder: str) -> JudgegapError:
    return JudgegapError(f"{out} is in use by another judgegap process ({holder.strip() or 'another process'});"
                         " wait for it to finish or use another -o DIR")


def refuse_if_locked(out: Path) -> None:
    """:class:`RunLock`'s refusal without taking the lock (the dry runs): the same line, holder named."""
    if is_locked(out):
        raise _in_use(Path(out), (Path(out) / LOCK_NAME).read_text(encoding="utf-8", errors="replace")[:200])


def is_locked(out: Path) -> bool:
    """True while some process holds the run directory's lock."""
    path = Path(out) / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def record_written(out: Path, paths: Iterable[Path]) -> None:
    """Add files to the manifest of what judgegap wrote in ``out``."""
    out = Path(out)
    man = out / MANIFEST_NAME
    known = set(read_manifest(out))
    new = sorted(known | {str(Path(p).resolve().relative_to(out.resolve())) for p in paths})
    tmp = man.with_suffix(".tmp")
    tmp.write_text("\n".join(new) + "\n", encoding="utf-8")
    tmp.replace(man)


def read_manifest(out: Path) -> list[str]:
    man = Path(out) / MANIFEST_NAME
    if not man.is_file():
        return []
    return [line for line in man.read_text(encoding="utf-8").splitlines() if line.strip()]


def remove_written(out: Path, store_filename: str) -> list[str]:
    """Delete what judgegap wrote in ``out`` (manifest + store files); nothing else."""
    out = Path(out)
    removed = []
    names = set(read_manifest(out)) | {store_filename, store_filename + "-wal", store_filename + "-shm"}
    root = out.resolve()
    for rel in sorted(names):
        p = (out / rel)
        try:
            p.resolve().relative_to(root)
        except ValueError:
            continue  # a manifest line pointing outside the directory is ignored
        if p.is_file():
            p.unlink()
            removed.append(rel)
    for d in sorted({(out / r).parent for r in names}, key=lambda x: -len(x.parts)):
        if d != out and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    return removed


def foreign_result_files(out: Path) -> list[str]:
    """Result-file names present in ``out`` that judgegap did not write (would be replaced)."""
    mine = set(read_manifest(out))
    return [n for n in RESULT_FILES if (Path(out) / n).exists() and n not in mine]
