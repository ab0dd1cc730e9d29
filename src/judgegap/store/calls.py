"""The call cache: every model call, keyed by everything that can change its output.

Key = sha256 of (backend, model fingerprint, method, full request) — so a call made by one
run is reused by any later run, in any output directory, that makes the same call. It is
one SQLite file (default ``~/.cache/judgegap/calls.sqlite``; ``call_cache:`` in the config
or ``JUDGEGAP_CALL_CACHE`` override) separate from run directories: deleting or overwriting
a run never throws away model work, and a damaged run store never damages the cache.

Several processes may share it: SQLite's own locking (WAL journal, busy timeout) serialises
writers; each chunk of results is committed as soon as it is computed, so ``kill -9`` loses at
most one chunk.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from judgegap.errors import JudgegapError
from judgegap.store.sqlite import canonical_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    method TEXT NOT NULL,
    request_json TEXT NOT NULL,
    response_json TEXT NOT NULL,
    elapsed_s REAL,
    created_at REAL NOT NULL
);
"""


def default_cache_path() -> Path:
    env = os.environ.get("JUDGEGAP_CALL_CACHE")
    if env:
        return Path(env).expanduser()
    from judgegap.backends.models import cache_dir

    return cache_dir() / "calls.sqlite"


class CallCache:
    """Thread- and process-safe SQLite cache of model calls."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else default_cache_path()
        existed = self.path.is_file()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=60.0)
            self._init(existed)
        except JudgegapError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise JudgegapError(f"cannot open call cache {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    def _init(self, existed: bool, deadline_s: float = 60.0) -> None:
        """Integrity check, WAL mode and schema. Another process initialising the same file at the
        same moment can make SQLite answer "locked" at once (switching journal modes and upgrading a
        read lock do not wait on the busy timeout), so this retries for up to a minute."""
        t_end = time.monotonic() + deadline_s
        delay = 0.05
        while True:
            try:
                if existed:
                    rows = self._conn.execute("PRAGMA quick_check").fetchall()
                    if rows != [("ok",)]:
                        self._conn.close()
                        detail = " ".join("; ".join(str(r[0]) for r in rows[:2]).split())
                        raise JudgegapError(f"call cache {self.path} is damaged ({detail}); move it away (runs"
                                            " will recompute their model calls) or set call_cache: to another file")
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > t_end:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def get_calls(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = list(keys)
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = f"SELECT key, response_json FROM calls WHERE key IN ({','.join('?' * len(chunk))})"
                for k, resp in self._conn.execute(q, chunk):
                    out[k] = json.loads(resp)
        self.hits += len(out)
        self.misses += len(keys) - len(out)
        return out

    def put_calls(self, rows: Iterable[tuple[str, str, str, str, dict[str, Any], dict[str, Any], float]]) -> None:
        """Insert (key, backend, model, method, request, response, elapsed_s) rows in one transaction."""
        now = time.time()
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO calls(key, backend, model, method, request_json, response_json,"
                " elapsed_s, created_at) VALUES (?,?,?,?,?,?,?,?)",
                [(k, b, m, meth, canonical_json(req), canonical_json(resp), el, now)
                 for k, b, m, meth, req, resp, el in rows],
            )

    def count_calls(self, method: str | None = None) -> int:
        with self._lock:
            if method:
                return int(self._conn.execute("SELECT COUNT(*) FROM calls WHERE method=?", (method,)).fetchone()[0])
            return int(self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def iter_calls(self, model: str | None = None) -> Iterator[dict[str, Any]]:
        """Every cached call (of the model labelled ``model`` only, when given), oldest first."""
        q = ("SELECT key, backend, model, method, request_json, response_json, elapsed_s, created_at FROM calls"
             + (" WHERE model=?" if model is not None else "") + " ORDER BY created_at")
        with self._lock:
            rows = self._conn.execute(q, (model,) if model is not None else ()).fetchall()
        for r in rows:
            yield {"key": r[0], "backend": r[1], "model": r[2], "method": r[3], "request": json.loads(r[4]),
                   "response": json.loads(r[5]), "elapsed_s": r[6], "created_at": r[7]}

    def import_calls(self, rows: list[dict[str, Any]]) -> int:
        """Add exported calls (see :func:`read_exported_calls`) in one transaction; a key already cached
        keeps its own response. Returns how many were new."""
        now = time.time()
        with self._lock, self._conn:
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO calls(key, backend, model, method, request_json, response_json,"
                " elapsed_s, created_at) VALUES (?,?,?,?,?,?,?,?)",
                [(r["key"], r["backend"], r["model"], r["method"], canonical_json(r.get("request", OMITTED)),
                  canonical_json(r["response"]), _number(r.get("elapsed_s")), _number(r.get("created_at")) or now)
                 for r in rows])
            return self._conn.total_changes - before


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


# An exported call may leave its request out (it holds the prompt, hence the dataset's passage): the key
# alone finds the response, because the key already hashes the request.
OMITTED = {"omitted": "request left out at export"}
_KEY_CHARS = frozenset("0123456789abcdef")


def export_calls(cache: CallCache, path: Path, model: str | None = None, requests: bool = True) -> int:
    """Write the cache's calls as JSON Lines (gzip when ``path`` ends in .gz), atomically.

    This is how model work moves between machines: ``judgegap store import-calls`` on another machine
    makes a run there find these calls in its cache, so ``--resume`` (or the same config) repeats none
    of them. ``requests=False`` leaves the prompts out (a shard then holds keys, answers and scores only)."""
    import gzip

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    try:
        with (gzip.open(tmp, "wt", encoding="utf-8") if path.suffix == ".gz"
              else tmp.open("w", encoding="utf-8")) as fh:
            for r in cache.iter_calls(model):
                if not requests:
                    r["request"] = OMITTED
                fh.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
                n += 1
        if n == 0 and model is not None:
            tmp.unlink()
            raise JudgegapError(f"no cached call of a model named {model!r} in {cache.path}")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise JudgegapError(f"cannot write {path}: {exc}") from None
    return n


def read_exported_calls(path: Path) -> list[dict[str, Any]]:
    """The calls of an export file, every line checked before any is used (one error line naming the
    file, line and field; nothing is imported from a file with a bad line)."""
    from judgegap.data.io import iter_jsonl

    rows = []
    for i, r in enumerate(iter_jsonl(Path(path)), 1):
        for field, kind in (("key", str), ("backend", str), ("model", str), ("method", str), ("response", dict)):
            if not isinstance(r.get(field), kind):
                raise JudgegapError(f"{path}: call {i}: field {field!r} missing or not a"
                                    f" {'string' if kind is str else 'JSON object'}")
        if len(r["key"]) != 64 or not set(r["key"]) <= _KEY_CHARS:
            raise JudgegapError(f"{path}: call {i}: key {r['key'][:80]!r} is not a call key (64 hex digits)")
        if "request" in r and not isinstance(r["request"], dict):
            raise JudgegapError(f"{path}: call {i}: field 'request' is not a JSON object")
        rows.append(r)
    if not rows:
        raise JudgegapError(f"{path}: no calls in the file")
    return rows
