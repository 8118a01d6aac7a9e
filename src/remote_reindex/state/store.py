"""``StateStore``: one SQLite file per job.

What is saved: the job's fingerprint (which body, which destination), per index and per
slice/partition a cursor that only moves forward after the destination acknowledged the
documents behind it, and the server engine's task ids. What is never saved: a password,
API key or header value — the fingerprint is computed from the body with those removed,
and credentials are read again from the body/environment on resume.

SQLite because it is embedded, transactional (a kill -9 between two saves leaves the
last committed cursor), and one file the user can delete to start over.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import orjson

from ..errors import UsageError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS job (
    fingerprint TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    engine TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursor (
    index_name TEXT NOT NULL,
    part TEXT NOT NULL,           -- slice id (client) or partition key (server)
    position BLOB,                -- engine-specific JSON: search_after values, offsets
    docs_done INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,         -- pending | running | done | failed
    task_id TEXT,                 -- server engine: the destination task
    updated REAL NOT NULL,
    PRIMARY KEY (index_name, part)
);
"""

# Keys whose values are secrets; they never reach the fingerprint or the file.
_SECRET_KEYS = {"password", "api_key", "headers"}


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: ("<redacted>" if k in _SECRET_KEYS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def job_fingerprint(body_raw: Mapping[str, Any], dest_url: str, engine: str) -> str:
    """A stable id for "this body to this destination with this engine", without secrets."""
    canonical = orjson.dumps({"body": _redact(body_raw), "dest": dest_url.rstrip("/"), "engine": engine}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def default_state_path(fingerprint: str) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "remote-reindex"
    return base / f"job-{fingerprint[:16]}.sqlite"


@dataclass(frozen=True)
class Cursor:
    index_name: str
    part: str
    position: Any
    docs_done: int
    status: str
    task_id: str | None


class StateStore:
    """Thread-safe: one connection, one lock; every save is its own transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise UsageError(f"state file {self.path} is a directory", "Give --state a file path (it is created if missing).")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise UsageError(f"state file {self.path} has schema {row[0]}, this version uses {SCHEMA_VERSION}", "Finish the job with the version that started it, or delete the state file to start over.")
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"state file {self.path} is not a remote-reindex state file or is corrupted ({exc})", "Delete it to start the job over, or give another --state file.") from None
        for f in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):  # SQLite's side files hold the same data
            try:
                os.chmod(f, 0o600)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- the job ----------------------------------------------------------------------

    def open_job(self, fingerprint: str, description: str, engine: str) -> "JobState":
        """Start or continue the job this file belongs to; refuse a file of another job."""
        with self._lock:
            rows = self._db.execute("SELECT fingerprint, description, status FROM job").fetchall()
            if rows and rows[0][0] != fingerprint:
                raise UsageError(
                    f"state file {self.path} belongs to another job ({rows[0][1]})",
                    "Give a different --state file for this job, or delete that one to start over.",
                )
            now = time.time()
            resumed = bool(rows)
            if not rows:
                self._db.execute("INSERT INTO job VALUES (?, ?, ?, ?, ?, 'running')", (fingerprint, description, engine, now, now))
            elif rows[0][2] != "done":  # a finished job stays finished: re-running it writes nothing
                self._db.execute("UPDATE job SET updated=?, status='running' WHERE fingerprint=?", (now, fingerprint))
        return JobState(self, fingerprint, resumed=resumed and rows[0][2] != "done", finished_before=bool(rows) and rows[0][2] == "done",
                        description=rows[0][1] if rows else description)

    def _set_job_status(self, fingerprint: str, status: str) -> None:
        with self._lock:
            self._db.execute("UPDATE job SET status=?, updated=? WHERE fingerprint=?", (status, time.time(), fingerprint))

    # -- cursors ----------------------------------------------------------------------

    def save(self, index_name: str, part: str, *, position: Any = None, docs_done: int | None = None, status: str | None = None, task_id: str | None = None) -> None:
        """Upsert one cursor. Only call after the destination acknowledged the documents."""
        now = time.time()
        pos = orjson.dumps(position) if position is not None else None
        with self._lock:
            self._db.execute(
                """INSERT INTO cursor (index_name, part, position, docs_done, status, task_id, updated)
                   VALUES (?, ?, ?, COALESCE(?, 0), COALESCE(?, 'pending'), ?, ?)
                   ON CONFLICT (index_name, part) DO UPDATE SET
                     position = COALESCE(excluded.position, cursor.position),
                     docs_done = COALESCE(?, cursor.docs_done),
                     status = COALESCE(?, cursor.status),
                     task_id = COALESCE(excluded.task_id, cursor.task_id),
                     updated = excluded.updated""",
                (index_name, part, pos, docs_done, status, task_id, now, docs_done, status),
            )

    def cursors(self, index_name: str | None = None) -> Iterator[Cursor]:
        with self._lock:
            if index_name is None:
                rows = self._db.execute("SELECT index_name, part, position, docs_done, status, task_id FROM cursor ORDER BY index_name, part").fetchall()
            else:
                rows = self._db.execute("SELECT index_name, part, position, docs_done, status, task_id FROM cursor WHERE index_name=? ORDER BY part", (index_name,)).fetchall()
        for r in rows:
            yield Cursor(r[0], r[1], orjson.loads(r[2]) if r[2] is not None else None, r[3], r[4], r[5])

    def get(self, index_name: str, part: str) -> Cursor | None:
        for c in self.cursors(index_name):
            if c.part == part:
                return c
        return None


@dataclass
class JobState:
    store: StateStore
    fingerprint: str
    resumed: bool  # an unfinished earlier run of this job left cursors
    finished_before: bool  # this job already completed once
    description: str = ""

    def save(self, index_name: str, part: str, **kw: Any) -> None:
        self.store.save(index_name, part, **kw)

    def get(self, index_name: str, part: str) -> Cursor | None:
        return self.store.get(index_name, part)

    def cursors(self, index_name: str | None = None) -> list[Cursor]:
        return list(self.store.cursors(index_name))

    @property
    def path(self) -> Path:
        return self.store.path

    def docs_done(self, index_name: str) -> int:
        """Documents of ``index_name`` acknowledged by earlier runs (any engine's parts)."""
        rows = self.cursors(index_name)
        whole = [c for c in rows if c.part == "index" and c.status == "done"]
        if whole:
            return whole[0].docs_done
        return sum(c.docs_done for c in rows if c.part != "index")

    def finish(self, ok: bool) -> None:
        self.store._set_job_status(self.fingerprint, "done" if ok else "failed")
