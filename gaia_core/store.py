"""The node's durable state: one SQLite database (WAL) per node.

What must survive a crash or ``kill -9`` lives here: the submitter's jobs and
task table, the reward ledger and aggregated statistics. Task payloads are
deleted once a job has delivered its results, or its retention has passed
(``secure_delete`` overwrites them, the file is rewritten and the WAL truncated), so only ids,
statuses and aggregates remain. Opening checks the file and its integrity and
migrates its schema (``PRAGMA user_version``); a database that cannot be used is
refused with a :class:`StateError` that says what to do.

A full disk loses nothing already accepted: deferred writes that fail with ``SQLITE_FULL`` wait in
memory and are written once there is room again, while new writes that must be durable at once
(a job's submission) are refused with :class:`DiskFull`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gaia_core.errors import NodeError

_SCHEMA_V1 = """
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
# Version 2: the credits this node granted that their worker has not taken yet (gaia_core.jobs.unsettled),
# each with the time (time.time()) after which it is no longer sent; the credit itself is the ledger's row.
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS unsettled (
    node_id TEXT NOT NULL, task_id TEXT NOT NULL, until REAL NOT NULL,
    PRIMARY KEY (node_id, task_id)
);
"""
# Version 3: the proof (a Proof frame) of the verified result that decided a task, kept for
# `gaia task result JOB --proofs DIR` and purged with the payloads (a table of its own, so that the
# script also applies to a version-0 file that already has it).
_SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS proofs (
    job TEXT NOT NULL, idx INTEGER NOT NULL, proof BLOB NOT NULL,
    PRIMARY KEY (job, idx)
);
"""
# Version 4: how a job's replicas are compared when it is not byte for byte (gaia_core.verification.Tolerance,
# `gaia task submit --tolerance`): one row per such job; a job without one compares output ids.
_SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS tolerances (
    job TEXT PRIMARY KEY, rtol REAL NOT NULL, atol REAL NOT NULL, floats TEXT NOT NULL
);
"""
# Version 5: beside a task's proof, the worker's evidence for it (a gaia_core.evidence.ItemSeal frame: the batch
# seal over the results it delivered together, and this result's inclusion path); none for a result without one
# (this node's own). Purged with the proofs; a table of its own, so the script also applies to a version-0 file.
_SCHEMA_V5 = """
CREATE TABLE IF NOT EXISTS seals (
    job TEXT NOT NULL, idx INTEGER NOT NULL, seal BLOB NOT NULL,
    PRIMARY KEY (job, idx)
);
"""
#: ``MIGRATIONS[i]`` takes the database from ``PRAGMA user_version`` i to i + 1 (0 is a new file, or one
#: written before versions were recorded, whose tables version 1 creates if they are missing).
#: To change the schema append a script; never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4, _SCHEMA_V5)
#: The schema version this code writes and reads.
SCHEMA_VERSION = len(MIGRATIONS)
#: state.db and its journals: only the node's user may read them.
_PRIVATE = 0o600
#: Seconds between two rounds of the job retention in :meth:`Store.scrub`.
PRUNE_EVERY_S = 60.0
log = logging.getLogger("gaia.store")


class StateError(NodeError):
    """``state.db`` cannot be used: not a database, damaged, or written by a newer GAIA."""


class DiskFull(NodeError):
    """``state.db`` cannot be written now: the file system holding the node's home is full."""


def _is_full(exc: BaseException) -> bool:
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"


def open_database(path: Path) -> sqlite3.Connection:
    """Open ``path`` (creating it when absent), check its integrity and migrate it to :data:`SCHEMA_VERSION`.

    The file and its journals are made mode 0600. Raises :class:`StateError`, whose one line says
    what is wrong and what to do, instead of ever starting on a damaged or silently empty database.
    """
    try:
        if not os.path.lexists(path):
            _create(path)
        _check_file(path)
        for name in (path, *_journals(path)):
            if name.exists():
                name.chmod(_PRIVATE)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            _configure(db)
            _check_integrity(db, path)
            _migrate(db, path)
        except BaseException:
            db.close()
            raise
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            raise _damaged(path, str(exc)) from None
        raise StateError(f"cannot open {path}: {exc}",  # locked, out of disk, I/O: the file itself may be sound
                         hint="check that no other program holds it, the disk has room, and its permissions") from None
    except OSError as exc:
        raise StateError(f"cannot open {path}: {exc.strerror or exc}", hint="check its owner and permissions") from None
    return db


def _journals(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _create(path: Path) -> None:
    """Build a new database beside ``path`` and move it into place, so a crash never leaves half of one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    building = path.with_name(path.name + ".new")
    for leftover in (building, *_journals(building)):
        leftover.unlink(missing_ok=True)
    fd = os.open(building, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
    os.fchmod(fd, _PRIVATE)  # whatever the umask
    os.close(fd)
    db = sqlite3.connect(building, isolation_level=None)
    try:
        _configure(db)
        _migrate(db, building)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    os.replace(building, path)


def _check_file(path: Path) -> None:
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise StateError(f"{path} is not a file, so it cannot hold the node's state",
                         hint=f"move it away with `mv {path} {path}.moved`; the node then starts with an empty state")
    wal = _journals(path)[0]
    if path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size):
        raise StateError(f"{path} is empty (0 bytes): the node's jobs, ledger and statistics in it are lost",
                         hint=f"restore it from a backup, or remove it with `rm {path}` to start with an empty state")


def _configure(db: sqlite3.Connection) -> None:
    # auto_vacuum takes effect only in a new file: there, pages freed by a purge are given back to the disk
    for pragma in ("auto_vacuum=INCREMENTAL", "journal_mode=WAL", "synchronous=NORMAL", "secure_delete=ON",
                   "foreign_keys=ON"):
        db.execute(f"PRAGMA {pragma}")


def _check_integrity(db: sqlite3.Connection, path: Path) -> None:
    problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        raise _damaged(path, "; ".join(problems))


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StateError(f"{path} has schema version {version}, newer than this GAIA knows ({SCHEMA_VERSION})",
                         hint="upgrade gaia-core to the version that wrote it, or use another --home")
    for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.executescript(f"BEGIN; {script}; PRAGMA user_version = {target}; COMMIT;")
        log.info("state.db migrated", extra={"schema_version": target})


def _damaged(path: Path, detail: str) -> StateError:
    return StateError(f"{path} is damaged ({detail})",
                      hint=f"restore it from a backup, or move it aside with `mv {path} {path}.damaged` "
                           "to start with an empty state")
_BUMP = "INSERT INTO stats (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + excluded.value"


class Store:
    """A thread-safe handle on ``state.db``: short transactions under one lock.

    Per-task bookkeeping (counters, task outcomes, ledger rows) is written behind: :meth:`defer`
    and :meth:`bump` collect it, and :meth:`flush` (called by the node every 0.2 s, before every
    read, and on close) writes it in one transaction. A crash loses at most that window; the
    tasks concerned are still pending in the job table and run again. While the disk is full
    (:attr:`full`) that window lasts until there is room: nothing deferred is dropped.
    """

    def __init__(self, path: Path, *, job_retention_s: float | None = None) -> None:
        """Open ``path``; with ``job_retention_s``, :meth:`scrub` also prunes finished jobs older than that."""
        self.path = path
        self.job_retention_s = job_retention_s
        self._db = open_database(path)
        self._lock = threading.RLock()
        self._pending: list[tuple[str, tuple]] = []
        self._block: list[tuple[str, tuple]] | None = None  # writes deferred inside an open atomic() block
        self._counters: dict[str, float] = {}
        self._dirty = False  # payloads were purged since the last scrub
        self._next_prune = 0.0  # time.monotonic() of the next retention round
        self._full = False  # the last write failed with SQLITE_FULL; cleared by the next one that succeeds

    @property
    def full(self) -> bool:
        """True while writes fail because the disk is full (deferred writes wait in memory meanwhile)."""
        return self._full

    def close(self) -> None:
        """Flush, rewrite the file after a purge not yet scrubbed, checkpoint and close (what a full disk still
        refuses is logged and lost)."""
        self.flush()
        with contextlib.suppress(DiskFull):  # on a full disk the freed bytes stay until a later purge rewrites it
            self._clear_purged()
        with self._lock:
            if self._pending or self._counters:
                log.error("disk full: state.db writes not saved at close; their tasks are still pending there",
                          extra={"home": str(self.path.parent), "writes_lost": len(self._pending)})
            with contextlib.suppress(sqlite3.Error):  # a full disk: the WAL keeps what a checkpoint cannot move
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    def execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        """Run one statement in its own transaction (after the deferred writes) and return its rows.

        A write the full disk refuses raises :class:`DiskFull`.
        """
        self.flush()
        with self._lock, self._refused_when_full():
            return self._db.execute(sql, tuple(params)).fetchall()

    def defer(self, sql: str, params: Iterable[Any] = ()) -> None:
        """Queue a write for the next :meth:`flush`."""
        with self._lock:
            (self._pending if self._block is None else self._block).append((sql, tuple(params)))

    def flush(self) -> None:
        """Write every deferred statement and counter in one transaction.

        When the disk is full they stay deferred, in order, for the next flush; with nothing to
        write, a flush while :attr:`full` tries a harmless write to notice that space returned.
        """
        with self._lock:
            if not self._pending and not self._counters:
                if self._full:
                    try:
                        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    except sqlite3.Error:
                        return
                    self._space_back()
                return
            pending, self._pending = self._pending, []
            counters, self._counters = self._counters, {}
            try:
                self._db.execute("BEGIN")
                for sql, params in pending:
                    self._db.execute(sql, params)
                self._db.executemany(_BUMP, counters.items())
                self._db.execute("COMMIT")
            except (sqlite3.Error, OverflowError) as exc:
                if self._db.in_transaction:  # SQLite rolls back by itself after some errors (SQLITE_FULL)
                    self._db.execute("ROLLBACK")
                if _is_full(exc):
                    self._hold(pending, counters)
                else:
                    self._write_one_by_one(pending, counters)
                return
            self._space_back()

    def _write_one_by_one(self, pending: list[tuple[str, tuple]], counters: dict[str, float]) -> None:
        """After a failed batch: write each statement on its own, so one bad row loses only itself."""
        statements = [*pending, *((_BUMP, item) for item in counters.items())]
        for i, (sql, params) in enumerate(statements):
            try:
                self._db.execute(sql, params)
            except (sqlite3.Error, OverflowError) as exc:
                if _is_full(exc):  # this one and the rest wait for room
                    self._hold(statements[i:], {})
                    return
                log.error("state.db write refused", extra={"error": str(exc), "statement": sql.split("(")[0][:60]})

    def _hold(self, pending: list[tuple[str, tuple]], counters: dict[str, float]) -> None:
        """The disk is full: keep these writes, ahead of any deferred since, for the next flush."""
        self._pending[:0] = pending
        for key, value in counters.items():
            self._counters[key] = self._counters.get(key, 0.0) + value
        if not self._full:
            self._full = True
            log.error("disk full: state.db writes wait in memory until space is freed; new jobs are refused",
                      extra={"home": str(self.path.parent), "writes_waiting": len(self._pending)})

    def _space_back(self) -> None:
        if self._full:
            self._full = False
            log.warning("disk space is back: the writes that waited are in state.db",
                        extra={"home": str(self.path.parent)})

    @contextlib.contextmanager
    def _refused_when_full(self) -> Iterator[None]:
        """Turn a write the full disk refused into :class:`DiskFull`."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            self._hold([], {})
            raise self.disk_full() from None

    def disk_full(self) -> DiskFull:
        """The one-line error for a write refused because the disk is full."""
        return DiskFull(f"disk full: free space in {self.path.parent}",
                        hint="tasks already accepted are kept and finish once there is room")

    @contextlib.contextmanager
    def atomic(self) -> Iterator[list[tuple[str, tuple]]]:
        """Writes deferred (and counters bumped) inside the block are written in one transaction at the
        next flush, none of them when the block raises. No flush runs in between (the store's lock is
        held); a read inside the block writes what was deferred before it, not what the block deferred.
        Yields the list of the block's writes.
        """
        with self._lock:
            outer, self._block = self._block, []
            try:
                yield self._block
            except BaseException:
                self._block = outer  # what the block deferred is dropped
                raise
            mine, self._block = self._block, outer
            (self._pending if outer is None else outer).extend(mine)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer several writes and flush them as one transaction, with no flush in between.

        When the block raises, none of its writes is kept. Raises :class:`DiskFull` when the disk
        is full: then none of this batch's writes is kept either (writes deferred before it still
        wait for room).
        """
        with self._lock:
            with self.atomic() as deferred:
                yield
            mine = {id(statement) for statement in deferred}
            self.flush()
            if self._full:
                self._pending = [statement for statement in self._pending if id(statement) not in mine]
                raise self.disk_full()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many rows in a single transaction (after the deferred writes)."""
        self.flush()
        with self._lock, self._refused_when_full():
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def bump(self, counters: dict[str, float]) -> None:
        """Add to aggregated statistics (written at the next flush)."""
        with self._lock:
            if self._block is not None:  # inside atomic(): written, or dropped, with the block's writes
                self._block.extend((_BUMP, item) for item in counters.items())
                return
            for key, value in counters.items():
                self._counters[key] = self._counters.get(key, 0.0) + value

    def stats(self) -> dict[str, float]:
        """Every aggregated statistic (after the deferred writes)."""
        return dict(self.execute("SELECT key, value FROM stats ORDER BY key"))

    def purge_payloads(self, job_id: str) -> None:
        """Delete a finished job's task inputs, modules, outputs and proofs (scrubbed from disk by :meth:`scrub`).
        """
        self.execute("UPDATE tasks SET task = NULL, result = NULL WHERE job = ?", (job_id,))
        self.execute("DELETE FROM proofs WHERE job = ?", (job_id,))
        self.execute("DELETE FROM seals WHERE job = ?", (job_id,))
        self._dirty = True

    def prune(self, older_than_s: float) -> list[str]:
        """Delete the payloads of jobs that finished more than ``older_than_s`` ago; return those jobs' ids.

        Ids, statuses, counts, the ledger and statistics stay. The bytes leave the disk at once:
        ``secure_delete`` overwrites them in the database, which is rewritten (VACUUM), and the WAL is truncated.
        """
        cutoff = time.time() - older_than_s
        with self._lock:
            jobs = [row[0] for row in self.execute(
                "SELECT id FROM jobs j WHERE finished IS NOT NULL AND finished <= ? AND (EXISTS (SELECT 1 FROM tasks "
                "WHERE job = j.id AND (task IS NOT NULL OR result IS NOT NULL)) OR EXISTS (SELECT 1 FROM proofs "
                "WHERE job = j.id)) ORDER BY finished", (cutoff,))]
            if jobs:
                self.executemany("UPDATE tasks SET task = NULL, result = NULL WHERE job = ?", [(j,) for j in jobs])
                self.executemany("DELETE FROM proofs WHERE job = ?", [(j,) for j in jobs])
                self.executemany("DELETE FROM seals WHERE job = ?", [(j,) for j in jobs])
                self._dirty = True
                self._clear_purged()
        return jobs

    def scrub(self) -> None:
        """Apply the job retention (once a minute), and after a purge rewrite the file and truncate the WAL.

        Called by the node's housekeeping every 0.2 s; skipped while the disk is full (a purge
        needs room in the WAL first).
        """
        if self._full:
            return
        if self.job_retention_s is not None and time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_S
            pruned = self.prune(self.job_retention_s)
            if pruned:
                log.info("payloads of finished jobs deleted after the retention",
                         extra={"jobs": len(pruned), "job_retention_s": self.job_retention_s})
        self._clear_purged()

    def _clear_purged(self) -> None:
        if self._dirty:
            with self._lock, self._refused_when_full():  # kept dirty on a full disk: done once there is room
                # VACUUM rewrites every page: secure_delete zeroes deleted cells, but not the old copies of
                # cells that b-tree balancing moved when a row grew, which freeing pages alone leaves behind
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._dirty = False

    def rows(self, sql: str, params: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
        """Rows of a query as dicts (after the deferred writes)."""
        self.flush()
        with self._lock:
            cur = self._db.execute(sql, tuple(params))
            names = [d[0] for d in cur.description]
            fetched = cur.fetchall()
        return (dict(zip(names, row, strict=True)) for row in fetched)

