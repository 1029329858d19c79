"""The node's durable state: one SQLite database (WAL) per node.

What must survive a crash or ``kill -9`` lives here: the submitter's jobs and
task table, the reward ledger and aggregated statistics. Task payloads are
deleted once a job has delivered its results (``secure_delete`` overwrites
them, and the WAL is truncated), so only ids, statuses and aggregates remain.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL, status TEXT NOT NULL,
    redundancy INTEGER NOT NULL, spot_check REAL NOT NULL, finished REAL
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT NOT NULL, job TEXT NOT NULL, idx INTEGER NOT NULL, state TEXT NOT NULL,
    task BLOB, result BLOB, peers TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '', updated REAL NOT NULL,
    PRIMARY KEY (job, idx)
);
CREATE INDEX IF NOT EXISTS tasks_by_id ON tasks (id);
CREATE TABLE IF NOT EXISTS ledger (
    node_id TEXT NOT NULL, task_id TEXT NOT NULL, role TEXT NOT NULL, credit REAL NOT NULL,
    fuel INTEGER NOT NULL, cpu_s REAL NOT NULL, memory_gb_s REAL NOT NULL, energy_j REAL,
    energy_source TEXT NOT NULL, verdict TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (node_id, task_id, role)
);
CREATE TABLE IF NOT EXISTS stats (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""
log = logging.getLogger("gaia.store")
_BUMP = "INSERT INTO stats (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + excluded.value"


class Store:
    """A thread-safe handle on ``state.db``: short transactions under one lock.

    Per-task bookkeeping (counters, task outcomes, ledger rows) is written behind: :meth:`defer`
    and :meth:`bump` collect it, and :meth:`flush` (called by the node every 0.2 s, before every
    read, and on close) writes it in one transaction. A crash loses at most that window; the
    tasks concerned are still pending in the job table and run again.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._pending: list[tuple[str, tuple]] = []
        self._counters: dict[str, float] = {}
        self._dirty = False  # payloads were purged since the last scrub
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "secure_delete=ON", "foreign_keys=ON"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Flush, checkpoint and close."""
        self.flush()
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    def execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        """Run one statement in its own transaction (after the deferred writes) and return its rows."""
        self.flush()
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def defer(self, sql: str, params: Iterable[Any] = ()) -> None:
        """Queue a write for the next :meth:`flush`."""
        with self._lock:
            self._pending.append((sql, tuple(params)))

    def flush(self) -> None:
        """Write every deferred statement and counter in one transaction."""
        with self._lock:
            if not self._pending and not self._counters:
                return
            pending, self._pending = self._pending, []
            counters, self._counters = self._counters, {}
            self._db.execute("BEGIN")
            try:
                for sql, params in pending:
                    self._db.execute(sql, params)
                self._db.executemany(_BUMP, counters.items())
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                self._write_one_by_one(pending, counters)
                return
            self._db.execute("COMMIT")

    def _write_one_by_one(self, pending: list[tuple[str, tuple]], counters: dict[str, float]) -> None:
        """After a failed batch: write each statement on its own, so one bad row loses only itself."""
        for sql, params in [*pending, *((_BUMP, item) for item in counters.items())]:
            try:
                self._db.execute(sql, params)
            except (sqlite3.Error, OverflowError) as exc:
                log.error("state.db write refused", extra={"error": str(exc), "statement": sql.split("(")[0][:60]})

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer several writes and flush them as one transaction, with no flush in between."""
        with self._lock:
            yield
            self.flush()

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Run one statement for many rows in a single transaction (after the deferred writes)."""
        self.flush()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def bump(self, counters: dict[str, float]) -> None:
        """Add to aggregated statistics (written at the next flush)."""
        with self._lock:
            for key, value in counters.items():
                self._counters[key] = self._counters.get(key, 0.0) + value

    def stats(self) -> dict[str, float]:
        """Every aggregated statistic (after the deferred writes)."""
        return dict(self.execute("SELECT key, value FROM stats ORDER BY key"))

    def purge_payloads(self, job_id: str) -> None:
        """Delete a finished job's task inputs, modules and outputs (scrubbed from disk by :meth:`scrub`)."""
        self.execute("UPDATE tasks SET task = NULL, result = NULL WHERE job = ?", (job_id,))
        self._dirty = True

    def scrub(self) -> None:
        """After a purge, checkpoint and truncate the WAL so deleted payloads leave the disk too."""
        if self._dirty:
            self._dirty = False
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def rows(self, sql: str, params: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
        """Rows of a query as dicts (after the deferred writes)."""
        self.flush()
        with self._lock:
            cur = self._db.execute(sql, tuple(params))
            names = [d[0] for d in cur.description]
            fetched = cur.fetchall()
        return (dict(zip(names, row)) for row in fetched)

