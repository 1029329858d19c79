"""The blob store of one node home: files under ``<home>/blobs`` indexed by SQLite, capped, LRU-evicted, pinnable.

Layout (directories 0700, files 0600)::

    blobs/index.db      one row per blob: size, Merkle root, leaf hashes, chunks held, pinned, last use
    blobs/data/<id>     complete blobs (read-only once in place)
    blobs/partial/<id>  blobs being fetched: chunks written at their offsets as they verify
    blobs/tmp/          files being added or exported, renamed into place once fsynced

Nothing unverified is ever kept: a file is added by streaming it into ``tmp/`` chunk by chunk (never
held whole), fsynced, then renamed to ``data/<id>``; a fetched chunk is checked against the blob's
root with its inclusion proof before it is written, and its bit is set in the index only after the
write is fdatasynced (every few chunks, and when a fetch ends), so a cut resumes from the chunks
already verified. The CLI and a running node open the same store (SQLite in WAL mode takes the
concurrent writes).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from attrs import frozen

from gaia_core.blobs.merkle import CHUNK_SIZE, HASH_SIZE, Tree, blob_id, chunk_count, chunk_length, leaf_hash, verify
from gaia_core.config import PRIVATE_DIR, PRIVATE_FILE, Home
from gaia_core.errors import GaiaError

#: The store's size cap unless ``gaia blob cap`` set another: 8 GiB.
DEFAULT_CAP_BYTES = 8 << 30
#: Fetched chunks written between two fdatasyncs (a kill -9 may cost this many; a cut that the fetch sees, none).
SYNC_CHUNKS = 16
#: Unfinished fetches kept for a retry at most: past it, the least recently used one no task holds goes
#: (tiny blobs that peers stop serving half-way cannot grow the index and the directory without end).
MAX_PARTIAL = 256
#: Merkle trees kept in memory for serving chunks.
TREE_CACHE = 16

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    leaves BLOB NOT NULL,         -- 32 bytes per chunk; zeros where a fetched chunk is not here yet
    have BLOB NOT NULL,           -- one byte per chunk: 1 once it is verified and on disk
    complete INTEGER NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0,
    fetched INTEGER NOT NULL DEFAULT 0,  -- fetched for a task, or its job released: goes when no task holds it
    added REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS uses (         -- jobs this node submitted that name a blob
    blob TEXT NOT NULL,
    job TEXT NOT NULL,
    PRIMARY KEY (blob, job)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uses_job ON uses (job);
"""


class BlobError(GaiaError):
    """A blob is unknown, cannot be read or written, or a peer sent one that does not verify."""

    exit_code = 9


class UnknownBlob(BlobError):
    """No complete blob with this id is in the store."""


@frozen
class BlobInfo:
    """What the store holds of one blob."""

    id: str
    size: int
    chunks: int
    held: int  # chunks verified and on disk
    pinned: bool
    fetched: bool
    added: float
    last_used: float

    @property
    def complete(self) -> bool:
        """True when every chunk is here."""
        return self.held == self.chunks


class _Index(sqlite3.Connection):
    """The connection to ``index.db``: an SQLite error (a full disk, a locked or damaged file) is a BlobError,
    so a fetch, a task or a command ends with one clear line instead of an exception nobody catches."""

    where = "index.db"

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        """``sqlite3.Connection.execute``; BlobError when SQLite fails."""
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise BlobError(f"cannot use the blob index {self.where}: {exc}",
                            hint="check the disk has room and the file is not damaged") from None

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        """``sqlite3.Connection.executemany``; BlobError when SQLite fails."""
        try:
            return super().executemany(sql, parameters)
        except sqlite3.Error as exc:
            raise BlobError(f"cannot use the blob index {self.where}: {exc}",
                            hint="check the disk has room and the file is not damaged") from None


def _full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def check_id(blob: str) -> str:
    """``blob`` when it looks like a blob id (64 lowercase hex), else BlobError saying so."""
    if len(blob) != 64 or any(c not in "0123456789abcdef" for c in blob):
        raise UnknownBlob(f"{blob[:80]!r} is not a blob id",
                          hint="ids are 64 lowercase hex characters; see gaia blob ls")
    return blob


class BlobStore:
    """The blobs of one home. Thread-safe; several processes may open the same directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in (root, root / "data", root / "partial", root / "tmp"):
            sub.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
            sub.chmod(PRIVATE_DIR)
        index = root / "index.db"
        try:
            self._db = sqlite3.connect(index, timeout=10.0, check_same_thread=False, isolation_level=None,
                                       factory=_Index)
            self._db.where = str(index)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash may lose the last commits, never corrupt
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, BlobError) as exc:
            raise BlobError(f"cannot open the blob index {index}: {exc}",
                            hint="check the disk has room and the file is not damaged") from None
        for path in root.glob("index.db*"):
            path.chmod(PRIVATE_FILE)
        self._lock = threading.RLock()
        self._trees: dict[str, Tree] = {}
        self._held: collections.Counter[str] = collections.Counter()  # blob -> tasks of this process using it
        self._pending: dict[str, dict[int, bytes]] = {}  # blob -> chunk index -> leaf hash: written, not yet synced

    def close(self) -> None:
        """Make the chunks written so far durable, then close the index."""
        with self._lock:
            for blob in list(self._pending):
                with contextlib.suppress(BlobError):  # e.g. the disk is full: those chunks are fetched again
                    self.sync(blob)
            self._db.close()

    # ------------------------------------------------------------------ reading the index

    def _row(self, blob: str) -> tuple[int, bytes, bytes, bytes, int, int, int, float, float] | None:
        with self._lock:
            return self._db.execute(
                "SELECT size, root, leaves, have, complete, pinned, fetched, added, last_used FROM blobs WHERE id = ?",
                (blob,)).fetchone()

    @staticmethod
    def _info(blob: str, row: Sequence[Any]) -> BlobInfo:
        size, _root, _leaves, have, _complete, pinned, fetched, added, last_used = row
        return BlobInfo(blob, size, chunk_count(size), have.count(1), bool(pinned), bool(fetched),
                        float(added), float(last_used))

    def info(self, blob: str) -> BlobInfo:
        """What the store holds of ``blob`` (complete or partial); UnknownBlob when nothing."""
        row = self._row(check_id(blob))
        if row is None:
            raise UnknownBlob(f"no blob {blob} in this store", hint="see gaia blob ls, or add it with gaia blob add")
        return self._info(blob, row)

    def pinned(self, blob: str) -> bool:
        """True when ``blob`` is here and pinned."""
        row = self._row(blob)
        return row is not None and bool(row[5])

    def has(self, blob: str) -> bool:
        """True when ``blob`` is here complete."""
        row = self._row(blob)
        return row is not None and bool(row[4])

    def blobs(self) -> list[BlobInfo]:
        """Every blob, most recently used first."""
        with self._lock:
            rows = self._db.execute("SELECT id, size, root, leaves, have, complete, pinned, fetched, added, last_used "
                                    "FROM blobs ORDER BY last_used DESC").fetchall()
        return [self._info(row[0], row[1:]) for row in rows]

    def used_bytes(self) -> int:
        """Bytes of every blob here, partial ones counted whole (their files are that size)."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()[0])

    @property
    def cap_bytes(self) -> int:
        """The size cap: past it, the least recently used unpinned blobs are removed."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'cap_bytes'").fetchone()
        return DEFAULT_CAP_BYTES if row is None else int(row[0])

    def set_cap(self, cap_bytes: int) -> list[str]:
        """Set the size cap and evict down to it; the ids removed."""
        if cap_bytes < 0:
            raise BlobError(f"a cap of {cap_bytes} bytes is negative", hint="give a size such as 2GiB")
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('cap_bytes', ?)", (cap_bytes,))
        return self.evict()

    # ------------------------------------------------------------------ paths and files

    def path(self, blob: str) -> Path:
        """The file of complete blob ``blob`` (read it, never write it); marks it used."""
        if not self.has(check_id(blob)):
            raise UnknownBlob(f"no complete blob {blob} in this store",
                              hint="see gaia blob ls, or add it with gaia blob add")
        with self._lock:
            self._db.execute("UPDATE blobs SET last_used = ? WHERE id = ?", (time.time(), blob))
        return self.root / "data" / blob

    def add_file(self, source: Path, *, pinned: bool = False) -> BlobInfo:
        """Add the file at ``source``, streamed one chunk at a time; its BlobInfo (the same id adds nothing)."""
        leaves: list[bytes] = []
        size = 0
        temp = self.root / "tmp" / f"add.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}"
        try:
            with open(source, "rb") as src, _private_writer(temp) as out:
                while chunk := src.read(CHUNK_SIZE):
                    leaves.append(leaf_hash(chunk))
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except IsADirectoryError:
            raise BlobError(f"{source} is a directory, not a file",
                            hint="give one file (tar a directory first)") from None
        except FileNotFoundError:
            temp.unlink(missing_ok=True)
            raise BlobError(f"{source}: no such file", hint="check the path") from None
        except OSError as exc:
            temp.unlink(missing_ok=True)
            if _full(exc):
                raise BlobError(f"disk full while adding {source}: nothing was kept",
                                hint=f"free space under {self.root} or lower the cap (gaia blob cap)") from None
            raise BlobError(f"cannot add {source}: {exc.strerror or exc}", hint="check the file can be read") from None
        tree = Tree(leaves)
        blob = blob_id(size, tree.root)
        try:
            with self._lock:
                now = time.time()
                if self.has(blob):
                    temp.unlink()
                    self._db.execute("UPDATE blobs SET last_used = ?, pinned = MAX(pinned, ?), fetched = 0 "
                                     "WHERE id = ?", (now, int(pinned), blob))
                else:
                    os.replace(temp, self.root / "data" / blob)
                    _fsync_dir(self.root / "data")
                    try:
                        self._db.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?, 1, ?, 0, ?, ?)",
                                         (blob, size, tree.root, b"".join(leaves), b"\x01" * len(leaves),
                                          int(pinned), now, now))
                    except BlobError:  # no file kept that the index does not know
                        (self.root / "data" / blob).unlink(missing_ok=True)
                        raise
                    (self.root / "partial" / blob).unlink(missing_ok=True)
        finally:
            temp.unlink(missing_ok=True)
        self.evict(keep=blob)
        return self.info(blob)

    def chunks(self, blob: str) -> Iterator[bytes]:
        """The chunks of complete blob ``blob`` in order, each checked against its leaf hash as it is read
        (a damaged file is removed: BlobError); marks it used."""
        self.path(blob)
        count = chunk_count(self.describe(blob)[0])
        for index in range(count):
            yield self._read(blob, index)[0]

    def _read(self, blob: str, index: int) -> tuple[bytes, bytes]:
        """Chunk ``index`` of complete blob ``blob`` checked against its leaf hash, and the leaves of the blob."""
        row = self._row(check_id(blob))
        if row is None or not row[4]:
            raise UnknownBlob(f"no complete blob {blob} here")
        size, leaves = row[0], row[2]
        if not 0 <= index < chunk_count(size):
            raise BlobError(f"blob {blob[:16]}… has no chunk {index}")
        try:
            with open(self.root / "data" / blob, "rb") as src:
                data = os.pread(src.fileno(), chunk_length(size, index), index * CHUNK_SIZE)
        except FileNotFoundError:
            self._drop(blob)
            raise UnknownBlob(f"the file of blob {blob[:16]}… is gone; removed from the index",
                              hint="add or fetch it again") from None
        leaf = leaves[index * HASH_SIZE:(index + 1) * HASH_SIZE]
        if len(data) != chunk_length(size, index) or leaf_hash(data) != leaf:
            self._drop(blob)
            raise BlobError(f"blob {blob[:16]}… is damaged on disk (chunk {index} does not match its hash); removed",
                            hint="add or fetch it again")
        return data, leaves

    def export(self, blob: str, dest: Path) -> int:
        """Copy complete blob ``blob`` to ``dest`` (temp file, fsync, rename), every chunk checked as it is read;
        the bytes written."""
        temp = dest.with_name(f".{dest.name}.gaia-{os.getpid()}.part")
        try:
            with _private_writer(temp) as out:
                written = 0
                for chunk in self.chunks(blob):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, dest)
        except BlobError:
            temp.unlink(missing_ok=True)
            raise
        except OSError as exc:
            temp.unlink(missing_ok=True)
            if _full(exc):
                raise BlobError(f"disk full while writing {dest}: nothing was written",
                                hint="free space there") from None
            raise BlobError(f"cannot write {dest}: {exc.strerror or exc}", hint="check the directory exists and is "
                            "writable") from None
        return written

    def remove(self, blob: str) -> None:
        """Delete ``blob`` (complete or partial), pinned or not; UnknownBlob when it is not here."""
        self.info(blob)
        self._drop(blob)

    def _drop(self, blob: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM blobs WHERE id = ?", (blob,))
            self._trees.pop(blob, None)
            self._pending.pop(blob, None)
        for sub in ("data", "partial"):
            (self.root / sub / blob).unlink(missing_ok=True)

    def pin(self, blob: str, pinned: bool = True) -> BlobInfo:
        """Pin (never evicted nor released) or unpin ``blob``."""
        self.info(blob)
        with self._lock:
            self._db.execute("UPDATE blobs SET pinned = ? WHERE id = ?", (int(pinned), blob))
        return self.info(blob)

    def evict(self, *, keep: str = "") -> list[str]:
        """Remove the least recently used blobs, neither pinned, held, nor named by a job of this node not yet
        released (its tasks' workers fetch them from here), until the store is within its cap; the ids removed.
        ``keep`` (the blob just added or being fetched) is never removed."""
        removed: list[str] = []
        with self._lock:
            over = self.used_bytes() - self.cap_bytes
            if over <= 0:
                return removed
            rows = self._db.execute("SELECT id, size FROM blobs WHERE pinned = 0 AND id != ? AND id NOT IN "
                                    "(SELECT blob FROM uses) ORDER BY last_used", (keep,)).fetchall()
            for blob, size in rows:
                if over <= 0:
                    break
                if self._held[blob] > 0:
                    continue
                self._drop(blob)
                removed.append(blob)
                over -= size
        return removed

    def hold(self, blobs: Sequence[str]) -> None:
        """A task of this process uses ``blobs``: the cap does not evict them until :meth:`release`."""
        with self._lock:
            self._held.update(blobs)

    def release(self, blobs: Sequence[str]) -> list[str]:
        """A task that held ``blobs`` is over: those no task holds any more that were fetched complete for a
        task and are not pinned are removed (privacy); the ids removed. A partial fetch stays for a retry
        (until the cap evicts it or ``gaia blob rm``)."""
        removed = []
        with self._lock:
            self._held.subtract(blobs)
            for blob in set(blobs):
                if self._held[blob] > 0:
                    continue
                del self._held[blob]
                row = self._row(blob)
                if row is not None and row[4] and row[6] and not row[5]:
                    self._drop(blob)
                    removed.append(blob)
        return removed

    # ------------------------------------------------------------------ the jobs of this node that name blobs

    def use(self, job: str, blobs: Sequence[str]) -> None:
        """Job ``job`` of this node names ``blobs``: once it is released they are removed (:meth:`end_uses`)."""
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO uses (blob, job) VALUES (?, ?)",
                                 [(blob, job) for blob in set(blobs)])

    def using_jobs(self, limit: int = 500) -> list[str]:
        """Up to ``limit`` jobs that name blobs of this store and were not released yet."""
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT DISTINCT job FROM uses LIMIT ?", (limit,))]

    def end_uses(self, jobs: Sequence[str]) -> list[str]:
        """Jobs ``jobs`` were released: the blobs no other job names any more are removed unless pinned (privacy);
        the ids removed. One that a running task holds goes when that task ends (:meth:`release`)."""
        removed = []
        with self._lock:
            named: set[str] = set()
            for job in jobs:
                named.update(row[0] for row in self._db.execute("SELECT blob FROM uses WHERE job = ?", (job,)))
                self._db.execute("DELETE FROM uses WHERE job = ?", (job,))
            for blob in sorted(named):
                if self._db.execute("SELECT 1 FROM uses WHERE blob = ? LIMIT 1", (blob,)).fetchone():
                    continue
                row = self._row(blob)
                if row is None or row[5]:
                    continue
                if self._held[blob] > 0:
                    self._db.execute("UPDATE blobs SET fetched = 1 WHERE id = ?", (blob,))
                    continue
                self._drop(blob)
                removed.append(blob)
        return removed

    # ------------------------------------------------------------------ serving chunks to peers

    def _tree(self, blob: str, leaves: bytes) -> Tree:
        with self._lock:
            tree = self._trees.get(blob)
            if tree is None:
                tree = Tree([leaves[i:i + HASH_SIZE] for i in range(0, len(leaves), HASH_SIZE)])
                if len(self._trees) >= TREE_CACHE:
                    self._trees.pop(next(iter(self._trees)))
                self._trees[blob] = tree
            return tree

    def describe(self, blob: str) -> tuple[int, bytes]:
        """The size and Merkle root of complete blob ``blob``."""
        row = self._row(check_id(blob))
        if row is None or not row[4]:
            raise UnknownBlob(f"no complete blob {blob} here")
        return row[0], row[1]

    def read_chunk(self, blob: str, index: int) -> tuple[bytes, list[bytes]]:
        """Chunk ``index`` of complete blob ``blob`` (checked: a damaged file is never served) and its proof."""
        data, leaves = self._read(blob, index)
        return data, self._tree(blob, leaves).proof(index)

    # ------------------------------------------------------------------ fetching from peers

    def begin(self, blob: str, size: int, root: bytes) -> list[int]:
        """Get ready to fetch ``blob`` of ``size`` bytes with Merkle ``root``; the chunk indexes still missing.

        BlobError when ``size`` and ``root`` are not those of ``blob`` (a peer lied), the blob is bigger than
        the cap (nothing is evicted for it) or there is no room.
        A partial file from an earlier cut is kept: its verified chunks are not fetched again.
        """
        if blob_id(size, root) != check_id(blob):
            raise BlobError(f"size {size} and root {root.hex()[:16]}… are not those of blob {blob[:16]}…")
        if size > self.cap_bytes:
            raise BlobError(f"blob {blob[:16]}… is {size:,} bytes, over this store's cap of {self.cap_bytes:,}",
                            hint="raise the cap with gaia blob cap MIB, or send the task to a node with room")
        with self._lock:
            row = self._row(blob)
            if row is None:
                self._trim_partial()
                now = time.time()
                count = chunk_count(size)
                partial = self.root / "partial" / blob
                try:
                    with _private_writer(partial) as out:
                        out.truncate(size)  # sparse: the chunks land at their offsets
                except OSError as exc:
                    partial.unlink(missing_ok=True)
                    raise BlobError(f"cannot make room for blob {blob[:16]}… ({size} bytes): {exc.strerror}",
                                    hint=f"free space under {self.root}") from None
                self._db.execute("INSERT INTO blobs VALUES (?, ?, ?, ?, ?, 0, 0, 1, ?, ?)",
                                 (blob, size, root, bytes(HASH_SIZE * count), bytes(count), now, now))
                if not count:  # the empty blob: nothing to fetch
                    self._complete(blob, root, b"")
                row = self._row(blob)
                assert row is not None
        self.evict(keep=blob)
        return [i for i, held in enumerate(row[3]) if not held]

    def _trim_partial(self) -> None:
        """Make room for one more unfinished fetch: drop the least recently used ones no task holds, past
        :data:`MAX_PARTIAL`."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM blobs WHERE complete = 0 ORDER BY last_used").fetchall()
            spare = [blob for (blob,) in rows if self._held[blob] <= 0]
            for blob in spare[:max(0, len(rows) - MAX_PARTIAL + 1)]:
                self._drop(blob)

    def put_chunk(self, blob: str, index: int, data: bytes, proof: Sequence[bytes]) -> bool:
        """Write fetched chunk ``index`` of ``blob`` if it verifies against the root; False (nothing kept) if not.

        Written chunks are made durable (fdatasync, then their bits in the index) every
        :data:`SYNC_CHUNKS` chunks and by :meth:`sync`; when the last one is, the blob is complete:
        moved to ``data/`` after one last check of the whole tree. A full disk is a BlobError; what
        was verified before stays.
        """
        row = self._row(blob)
        if row is None or row[4]:
            return row is not None  # complete already (another peer was faster), or removed meanwhile
        size, root = row[0], row[1]
        count = chunk_count(size)
        if not 0 <= index < count or len(data) != chunk_length(size, index):
            return False
        leaf = leaf_hash(data)
        if not verify(root, count, index, leaf, proof):
            return False
        with self._io(blob) as fd:
            os.pwrite(fd, data, index * CHUNK_SIZE)
        with self._lock:
            pending = self._pending.setdefault(blob, {})
            pending[index] = leaf
            due = len(pending) >= SYNC_CHUNKS or len(pending) + row[3].count(1) >= count
        if due:  # outside the lock: the other streams keep writing while this one waits for the disk
            self.sync(blob)
        return True

    @contextlib.contextmanager
    def _io(self, blob: str) -> Iterator[int]:
        """The partial file of ``blob`` open for writing; an OSError becomes a BlobError (a full disk says so)."""
        try:
            fd = os.open(self.root / "partial" / blob, os.O_WRONLY)
            try:
                yield fd
            finally:
                os.close(fd)
        except OSError as exc:
            if _full(exc):
                raise BlobError(f"disk full while fetching blob {blob[:16]}…: the chunks verified so far are kept",
                                hint=f"free space under {self.root}, then run the task again") from None
            raise BlobError(f"cannot write blob {blob[:16]}…: {exc.strerror or exc}") from None

    def sync(self, blob: str) -> None:
        """Make the chunks of ``blob`` written so far durable: fdatasync, then mark them held in the index.

        The fdatasync runs outside the store's lock, so other threads go on writing chunks (and
        serving) meanwhile; the chunks it covers are marked held only once it returned.
        """
        with self._lock:
            pending = self._pending.pop(blob, None)
            now = self._row(blob)
            if not pending or now is None or now[4]:
                return
        with self._io(blob) as fd:
            os.fdatasync(fd)
        with self._lock:
            now = self._row(blob)  # again: another sync may have marked its chunks meanwhile, or the blob gone
            if now is None or now[4]:
                return
            leaves, have = bytearray(now[2]), bytearray(now[3])
            for index, leaf in pending.items():
                leaves[index * HASH_SIZE:(index + 1) * HASH_SIZE] = leaf
                have[index] = 1
            self._db.execute("UPDATE blobs SET leaves = ?, have = ?, last_used = ? WHERE id = ?",
                             (bytes(leaves), bytes(have), time.time(), blob))
            if have.count(1) == len(have):
                self._complete(blob, now[1], bytes(leaves))

    def _complete(self, blob: str, root: bytes, leaves: bytes) -> None:
        if self._tree(blob, leaves).root != root:  # cannot happen with verified chunks; never keep a wrong blob
            self._drop(blob)
            raise BlobError(f"blob {blob[:16]}… does not match its root once whole; dropped")
        self._db.execute("UPDATE blobs SET complete = 1 WHERE id = ?", (blob,))  # first: no file outside the index
        try:
            os.replace(self.root / "partial" / blob, self.root / "data" / blob)
            _fsync_dir(self.root / "data")
        except OSError as exc:
            self._drop(blob)
            raise BlobError(f"cannot move blob {blob[:16]}… into place: {exc.strerror or exc}; dropped",
                            hint=f"free space under {self.root}, then run the task again") from None


def home_store(home: Home) -> BlobStore:
    """The blob store of node home ``home`` (the home made private first)."""
    return BlobStore(home.make_private().root / "blobs")


def blob_file(home: Home, blob: str) -> Path:
    """Where complete blob ``blob`` lies in the store of ``home`` (the file may be absent)."""
    return home.root / "blobs" / "data" / check_id(blob)


@contextlib.contextmanager
def _private_writer(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for writing, created 0600 or emptied."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as out:
        yield out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
