"""The results store: one SQLite file per output directory.

``runs`` records config (and its hash), versions, git commit, seed and status of each
run; ``records`` holds the experiment's results, scoped to the config hash, from which
reports are rebuilt without calling any model. Model calls are NOT kept here: they live
in the call cache (:mod:`judgegap.store.calls`), which outlives run directories.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from judgegap.errors import JudgegapError
from judgegap.store import jsonout

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    seed INTEGER,
    config_json TEXT NOT NULL,
    env_json TEXT NOT NULL,
    summary_json TEXT,
    config_hash TEXT
);
CREATE TABLE IF NOT EXISTS records (
    run_id INTEGER NOT NULL,
    experiment TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_key TEXT NOT NULL,
    record_json TEXT NOT NULL,
    scope TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (scope, experiment, kind, record_key)
);
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail_json TEXT NOT NULL
);
"""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def call_key(backend: str, fingerprint: dict[str, Any], method: str, request: dict[str, Any]) -> str:
    """Hash of everything that can change a call's output."""
    payload = canonical_json({"backend": backend, "model": fingerprint, "method": method, "request": request})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Store:
    """Thread-safe SQLite store (WAL mode) for calls, runs and records."""

    FILENAME = "judgegap.sqlite"

    def __init__(self, path: Path | str, check: bool = True) -> None:
        self.path = Path(path)
        existed = self.path.is_file()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            if existed and check:
                self._check_integrity()
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            self._migrate()
        except JudgegapError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise JudgegapError(f"cannot open results store {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self.run_id: int | None = None
        self.scope = ""  # the config hash whose records this store reads and writes
        last = self.last_run() if existed else None
        if last is not None:
            self.scope = last.get("config_hash") or ""

    def _check_integrity(self) -> None:
        """Refuse a damaged file before any work (a model load, a run) starts."""
        try:
            rows = self._conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            rows = [(str(exc),)]
        if rows != [("ok",)]:
            self._conn.close()
            detail = " ".join("; ".join(str(r[0]) for r in rows[:2]).split())
            raise JudgegapError(f"{self.path} is damaged ({detail}); move it away and rerun with --overwrite"
                                "")

    def _migrate(self) -> None:
        """Stores written before run scoping: add the columns (their records get scope '')."""
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(runs)")}
        if "config_hash" not in cols:
            self._conn.execute("ALTER TABLE runs ADD COLUMN config_hash TEXT")
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(records)")}
        if "scope" not in cols:
            self._conn.execute("ALTER TABLE records ADD COLUMN scope TEXT NOT NULL DEFAULT ''")

    @classmethod
    def in_dir(cls, output_dir: Path | str) -> Store:
        return cls(Path(output_dir) / cls.FILENAME)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- runs ---------------------------------------------------------------
    def start_run(self, name: str, config: dict[str, Any], env: dict[str, Any], seed: int,
                  config_hash: str = "") -> int:
        with self._lock, self._conn:
            cur = self._conn.execute(
                "INSERT INTO runs(name, started_at, status, seed, config_json, env_json, config_hash)"
                " VALUES (?,?,?,?,?,?,?)",
                (name, time.time(), "running", seed, canonical_json(config), canonical_json(env), config_hash),
            )
        self.run_id = int(cur.lastrowid)
        self.scope = config_hash
        return self.run_id

    def mark_stale_runs(self) -> int:
        """Runs left 'running' by a process that died (kill -9, power loss) become 'interrupted'.

        Only call this while holding the run directory's lock: then nobody else is running."""
        with self._lock, self._conn:
            cur = self._conn.execute("UPDATE runs SET status='interrupted' WHERE status='running'")
        return cur.rowcount

    def finish_run(self, status: str, summary: dict[str, Any] | None = None) -> None:
        if self.run_id is None:
            return
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE runs SET finished_at=?, status=?, summary_json=? WHERE run_id=?",
                (time.time(), status, canonical_json(summary) if summary is not None else None, self.run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT run_id, name, started_at, finished_at, status, seed, config_json, env_json, summary_json,"
                " config_hash FROM runs ORDER BY run_id").fetchall()
        out = []
        for r in rows:
            out.append({"run_id": r[0], "name": r[1], "started_at": r[2], "finished_at": r[3], "status": r[4],
                        "seed": r[5], "config": json.loads(r[6]), "env": json.loads(r[7]),
                        "summary": json.loads(r[8]) if r[8] else None, "config_hash": r[9]})
        return out

    def last_run(self) -> dict[str, Any] | None:
        runs = self.runs()
        return runs[-1] if runs else None

    def log_event(self, kind: str, detail: dict[str, Any]) -> None:
        with self._lock, self._conn:
            self._conn.execute("INSERT INTO events(run_id, at, kind, detail_json) VALUES (?,?,?,?)",
                               (self.run_id, time.time(), kind, canonical_json(detail)))

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT run_id, at, kind, detail_json FROM events"
        args: tuple[Any, ...] = ()
        if kind:
            q += " WHERE kind=?"
            args = (kind,)
        with self._lock:
            rows = self._conn.execute(q, args).fetchall()
        return [{"run_id": r[0], "at": r[1], "kind": r[2], **json.loads(r[3])} for r in rows]

    # -- records --------------------------------------------------------------
    def put_records(self, experiment: str, kind: str, records: Iterable[tuple[str, Any]]) -> None:
        """Store (key, record) pairs; a record is a typed Record or a dict checked against the type
        registered for (experiment, kind) (judgegap.store.records)."""
        from judgegap.store.records import checked_record

        records = [(k, checked_record(experiment, kind, r)) for k, r in records]
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO records(run_id, experiment, kind, record_key, record_json, scope)"
                " VALUES (?,?,?,?,?,?)",
                [(self.run_id or 0, experiment, kind, k, canonical_json(r), self.scope) for k, r in records],
            )

    def typed(self, experiment: str, kind: str) -> list[Any]:
        """The records of (experiment, kind) as their frozen pydantic models."""
        from judgegap.store.records import RECORD_TYPES

        model = RECORD_TYPES[(experiment, kind)]
        return [model.model_validate(r) for r in self.records(experiment, kind)]

    def count_records(self) -> int:
        """Records of every run and experiment in this store."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def records(self, experiment: str, kind: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT record_json FROM records WHERE scope=? AND experiment=?"
        args: tuple[Any, ...] = (self.scope, experiment)
        if kind:
            q += " AND kind=?"
            args += (kind,)
        with self._lock:
            return [json.loads(r[0]) for r in self._conn.execute(q + " ORDER BY rowid", args)]

    def to_pandas(self, table: str = "records"):
        """A table as a pandas DataFrame (records are flattened one level)."""
        import pandas as pd

        if table == "runs":
            return pd.DataFrame(self.runs())
        if table == "records":
            with self._lock:
                rows = self._conn.execute("SELECT experiment, kind, record_json FROM records WHERE scope=?",
                                          (self.scope,)).fetchall()
            return pd.json_normalize([{"experiment": e, "kind": k, **json.loads(j)} for e, k, j in rows],
                                     max_level=0)
        raise JudgegapError(f"unknown table {table!r} (runs, records; calls live in the call cache)")

    def export_jsonl(self, table: str, path: Path) -> int:
        """Write a table as JSON Lines; returns the number of lines."""
        if table == "runs":
            rows: Iterable[dict[str, Any]] = self.runs()
        else:
            with self._lock:
                raw = self._conn.execute("SELECT experiment, kind, record_json FROM records WHERE scope=?"
                                         " ORDER BY rowid", (self.scope,)).fetchall()
            rows = ({"experiment": e, "kind": k, **json.loads(j)} for e, k, j in raw)
        n = 0
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(jsonout.dumps(r, ensure_ascii=False) + "\n")
                n += 1
        tmp.replace(path)
        return n
