"""The node's side of blobs: serve chunks to peers, fetch a task's blobs before it runs, release them after.

A task's blobs are fetched from its submitter first, then from the other peers that are up (the
first :data:`~gaia_core.blobs.fetch.MAX_SOURCES` that hold a copy). While a task runs its blobs are
held (the cap does not evict them); once no running task names a fetched blob any more it is
removed (privacy), unless the operator pinned it (``gaia blob pin``). On the submitter, the blobs a
job names are removed once that job is released (its payloads deleted by ``--release`` or the
retention) and no other unreleased job names them, unless pinned. A peer may read a blob of this
node only when it is pinned here or a task naming it that this node submitted is out at that peer
(``may_read``; :class:`~gaia_core.blobs.protocol.BlobServer`).
"""

from __future__ import annotations

import logging
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gaia_core.blobs.fetch import Fetcher
from gaia_core.blobs.protocol import BlobServer
from gaia_core.blobs.store import BlobError, BlobStore, UnknownBlob, blob_file, home_store
from gaia_core.config import Home
from gaia_core.errors import GaiaError
from gaia_core.model import Envelope, Status, Task, TaskResult
from gaia_core.roles import NodeContext, Transport

log = logging.getLogger("gaia.blobs")

#: Seconds a task's blobs may take to arrive, unless its deadline comes first.
FETCH_TIMEOUT_S = 600.0
#: Seconds between two looks for blobs that only released jobs named.
SWEEP_S = 1.0


class TaskBlobs:
    """Blobs for the tasks one node runs, through its transport; ``strike(peer)`` penalises a lying peer, and
    ``may_read(peer, blob)`` says whether a peer may read an unpinned blob of this node.

    The store under ``home`` is opened on first use, so a node whose tasks name no blobs never
    touches it (nor fails to start on a full disk because of it).
    """

    def __init__(self, home: Home, transport: Transport, strike: Callable[[str], None], *,
                 may_read: Callable[[str, str], bool]) -> None:
        self.home = home
        self.transport = transport
        self._strike = strike
        self._may_read = may_read
        self._parts: tuple[BlobStore, BlobServer, Fetcher] | None = None
        self._lock = threading.Lock()
        self._sweeping = threading.Lock()  # a sweep never runs between a job's creation and its blobs' naming
        self._next_sweep = 0.0

    def _open(self) -> tuple[BlobStore, BlobServer, Fetcher]:
        with self._lock:
            if self._parts is None:
                store = home_store(self.home)
                server = BlobServer(store, may_read=self._may_read)
                self._parts = store, server, Fetcher(store, self._request, self._strike)
            return self._parts

    @property
    def store(self) -> BlobStore:
        """The home's blob store."""
        return self._open()[0]

    def close(self) -> None:
        """Close the store if it was opened."""
        with self._lock:
            if self._parts is not None:
                self._parts[0].close()

    def _request(self, peer: str, kind: str, body: bytes, timeout: float) -> bytes:
        return self.transport.request(peer, kind, body, timeout=timeout)

    def serve(self, envelope: Envelope) -> bytes:
        """Answer an authenticated ``blob.chunks`` request."""
        return self._open()[1].on_request(envelope)

    def prepare(self, task: Task, origin: str) -> TaskResult | None:
        """Fetch the blobs ``task`` lacks before it runs (from ``origin`` first, then the peers that are up);
        None when all are here, else an ``error`` result saying why."""
        self.store.hold(task.blobs)
        peers = [origin, *(p.node_id for p in self.transport.peers() if p.state == "up" and p.node_id != origin)]
        timeout = FETCH_TIMEOUT_S if task.deadline is None else min(FETCH_TIMEOUT_S, task.deadline - time.time())
        try:
            self._open()[2].ensure(task.blobs, peers, timeout=max(1.0, timeout))
        except BlobError as exc:
            return TaskResult(task_id=task.id, status=Status.ERROR, message=f"cannot fetch the task's blobs: {exc}")
        return None

    def release(self, task: Task) -> list[str]:
        """``task`` is over: remove the fetched, unpinned blobs no other running task names; the ids removed."""
        return self.store.release(task.blobs)

    def named(self, job: str, tasks: Sequence[Task], create: Callable[[], None]) -> None:
        """Create ``job`` of ``tasks`` (``create()``) and record the blobs they name, to go once it is released.

        No sweep runs between the two: it would see the new job neither stored nor naming its blobs, and take
        a blob it names for one that only released jobs named.
        """
        blobs = [blob for task in tasks for blob in task.blobs]
        with self._sweeping:
            create()
            if blobs:
                self.store.use(job, blobs)

    def sweep(self, released: Callable[[list[str]], list[str]]) -> list[str]:
        """Remove the unpinned blobs that only released jobs named; ``released(jobs)`` says which of ``jobs``
        are. The ids removed. Looks once per :data:`SWEEP_S` at most; touches nothing on a home that never
        stored a blob."""
        if time.monotonic() < self._next_sweep:
            return []
        self._next_sweep = time.monotonic() + SWEEP_S
        if self._parts is None and not (self.home.root / "blobs" / "index.db").exists():
            return []
        try:
            with self._sweeping:
                jobs = self.store.using_jobs()
                gone = released(jobs) if jobs else []
                removed = self.store.end_uses(gone) if gone else []
        except (GaiaError, sqlite3.Error) as exc:  # e.g. a full disk: tried again a minute later, not every second
            self._next_sweep = time.monotonic() + 60 * SWEEP_S
            log.warning("cannot remove the blobs of released jobs yet", extra={"error": str(exc)})
            return []
        if removed:
            log.info("blobs of released jobs removed", extra={"blobs": len(removed), "jobs": len(gone)})
        return removed


def blob_paths(context: NodeContext, task: Task) -> tuple[Path, ...]:
    """The files of ``task``'s blobs in the order of ``task.blobs``, for its runner to read (never write).

    The node calls a runner only once every blob of the task is complete and verified in its store,
    and the files stay in place for the whole run. BlobError (exit code 9) when one is not there:
    the runner was called outside a node that fetched them.
    """
    paths = tuple(blob_file(context.home, blob) for blob in task.blobs)
    for blob, path in zip(task.blobs, paths, strict=True):
        try:
            regular = stat.S_ISREG(path.stat().st_mode)
        except OSError:
            regular = False
        if not regular:
            raise UnknownBlob(f"blob {blob[:16]}… of task {task.id[:16]}… is not complete in the store of "
                              f"{context.home.root}", hint="run the task on a node: it fetches a task's blobs first")
    return paths
