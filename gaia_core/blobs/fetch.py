"""Fetching the blobs a task names from the peers that hold them: several chunks in flight, from several
peers, each chunk verified against the blob's root before it is written, resumable after a cut.

Each request asks for one chunk, so a cut loses at most one chunk per stream; streams are as many
as the sources serve at once (:data:`~gaia_core.blobs.protocol.SERVING_PER_PEER` each), up to
:data:`STREAMS`.

A peer whose answer does not verify (a wrong chunk, a proof that fails, a size and root that are
not the blob's) is struck: ``strike(peer)`` (the node lowers its trust and backs it off) and it is
not asked again for :data:`BAN_S`; its chunks go to another peer. A peer that is busy, slow or gone
is asked again later, up to :data:`MAX_FAILURES` times per fetch.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Sequence

from gaia_core import codec
from gaia_core.blobs.merkle import blob_id
from gaia_core.blobs.protocol import CHUNKS, SERVING_PER_PEER, ChunkReply, ChunkRequest, decode_reply
from gaia_core.blobs.store import BlobError, BlobStore
from gaia_core.errors import GaiaError

log = logging.getLogger("gaia.blobs")

#: Requests in flight at once for one blob (each for one chunk).
STREAMS = 8
#: Seconds a peer that lied is not asked again for any blob.
BAN_S = 600.0
#: Failed requests (busy, timeout, error) a peer may have during one fetch before it is left out.
MAX_FAILURES = 5
#: Peers asked whether they hold a blob.
MAX_SOURCES = 8
#: Seconds they have to answer that question (they are asked at once).
ASK_S = 5.0
#: Seconds the others still have once one has said it holds the blob.
GRACE_S = 0.25

Request = Callable[[str, str, bytes, float], bytes]


class Fetcher:
    """Fetches blobs into ``store`` through ``request(peer, kind, body, timeout) -> reply body``."""

    def __init__(self, store: BlobStore, request: Request, strike: Callable[[str], None], *,
                 streams: int = STREAMS, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._request = request
        self._strike = strike
        self.streams = streams
        self._clock = clock
        self._banned: dict[str, float] = {}
        self._lock = threading.Lock()
        self._fetching: dict[str, tuple[threading.Lock, int]] = {}  # one fetch per blob at a time: lock, tasks

    def banned(self, peer: str) -> bool:
        """True while ``peer`` is left out for having lied."""
        with self._lock:
            return self._banned.get(peer, 0.0) > self._clock()

    def _lied(self, peer: str, what: str) -> None:
        """Ban ``peer`` and strike it, once per ban (its other streams' answers may fail too)."""
        log.warning("peer sent a blob answer that does not verify", extra={"peer": peer[:16], "what": what})
        with self._lock:
            now = self._clock()
            if self._banned.get(peer, 0.0) > now:
                return
            for gone in [p for p, until in self._banned.items() if until <= now]:  # bans that ended
                del self._banned[gone]
            self._banned[peer] = now + BAN_S
        self._strike(peer)

    def ensure(self, blobs: Sequence[str], peers: Sequence[str], *, timeout: float) -> None:
        """Fetch every one of ``blobs`` not complete here, asking ``peers`` in order; BlobError if one cannot be had."""
        deadline = self._clock() + timeout
        for blob in blobs:
            with self._lock:
                fetching, users = self._fetching.get(blob, (threading.Lock(), 0))
                self._fetching[blob] = fetching, users + 1
            try:
                with fetching:  # two tasks naming one blob fetch it once
                    if not self.store.has(blob):
                        self._fetch(blob, peers, deadline)
            finally:
                with self._lock:  # the lock goes with its last user, never while another waits on it
                    fetching, users = self._fetching[blob]
                    if users == 1:
                        del self._fetching[blob]
                    else:
                        self._fetching[blob] = fetching, users - 1

    def _ask(self, peer: str, request: ChunkRequest, deadline: float, *, wait: float = 30.0) -> ChunkReply | None:
        """The peer's answer within ``wait`` s, None when it failed to give one (busy, gone, slow); a lie strikes it."""
        timeout = max(0.1, min(wait, deadline - self._clock()))
        try:
            body = self._request(peer, CHUNKS, codec.encode(request), timeout)
        except GaiaError:
            return None
        try:
            reply = decode_reply(body)
        except GaiaError as exc:
            self._lied(peer, f"undecodable answer: {exc}")
            return None
        if reply.blob != request.blob or (not reply.missing and blob_id(reply.size, reply.root) != request.blob):
            self._lied(peer, "a size and root that are not the blob's")
            return None
        return reply

    def _sources(self, blob: str, peers: Sequence[str], deadline: float) -> tuple[list[str], ChunkReply]:
        """The peers (of the first MAX_SOURCES not banned) that hold ``blob``, in the order of ``peers``, and one
        of their answers.

        They are asked at once, one small request each (a server answers it without taking one of its
        serving slots): a peer that is slow or gone costs at most ASK_S, and once one peer has said it
        holds the blob the others have GRACE_S more.
        """
        candidates = [p for p in peers if not self.banned(p)][:MAX_SOURCES]
        holders: dict[str, ChunkReply] = {}
        pool = concurrent.futures.ThreadPoolExecutor(max(1, len(candidates)), thread_name_prefix="gaia-blob-ask")
        try:
            asking = {pool.submit(self._ask, p, ChunkRequest(blob), deadline, wait=ASK_S): p for p in candidates}
            until = self._clock() + ASK_S
            while asking and self._clock() < until:
                done, _ = concurrent.futures.wait(asking, timeout=until - self._clock(),
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    reply = future.result()
                    if reply is not None and not reply.missing:
                        holders[asking[future]] = reply
                        until = min(until, self._clock() + GRACE_S)
                    del asking[future]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a slow peer's request ends by its own timeout
        sources = [p for p in candidates if p in holders]
        answer = holders[sources[0]] if sources else None
        if answer is None:
            raise BlobError(f"no peer holds blob {blob}: asked {min(len(peers), MAX_SOURCES)}",
                            hint="add it on the submitter with gaia blob add before submitting the task")
        return sources, answer

    def _fetch(self, blob: str, peers: Sequence[str], deadline: float) -> None:
        started = self._clock()
        sources, answer = self._sources(blob, peers, deadline)
        todo = collections.deque(self.store.begin(blob, answer.size, answer.root))
        failures: collections.Counter[str] = collections.Counter()
        lock = threading.Condition()
        busy: set[str] = set()
        errors: list[BlobError] = []
        turn = [0]

        def pick() -> tuple[str, int] | None:
            """The next chunk and the peer to ask for it, or None when nothing is left to hand out."""
            with lock:
                while True:
                    usable = [p for p in sources if failures[p] < MAX_FAILURES and not self.banned(p)]
                    if not todo or not usable or self._clock() > deadline:
                        return None
                    idle = [p for p in usable if p not in busy] or usable
                    peer = idle[turn[0] % len(idle)]
                    turn[0] += 1
                    busy.add(peer)
                    return peer, todo.popleft()

        def stream() -> None:
            while (job := pick()) is not None:
                peer, index = job
                reply = self._ask(peer, ChunkRequest(blob, (index,)), deadline)
                if reply is not None and reply.missing:
                    reply = None  # it dropped the blob meanwhile
                chunk = next((c for c in reply.chunks if c.index == index), None) if reply is not None else None
                if reply is not None and chunk is None:
                    self._lied(peer, f"an answer without the chunk {index} asked for")
                kept = False
                try:
                    if chunk is not None:
                        kept = self.store.put_chunk(blob, index, chunk.data, chunk.proof)
                        if not kept:
                            self._lied(peer, f"chunk {index} does not verify")
                except BlobError as exc:  # e.g. a full disk: stop every stream, keep what verified
                    with lock:
                        errors.append(exc)
                        todo.clear()
                        busy.discard(peer)
                    return
                with lock:
                    busy.discard(peer)
                    if not kept:
                        failures[peer] += 1
                        todo.append(index)
                        if reply is None and failures[peer] > 1:
                            lock.wait(min(0.05 * failures[peer], 0.5))  # a busy peer: back off a little

        threads = [threading.Thread(target=stream, name=f"gaia-blob-{i}", daemon=True)
                   for i in range(min(self.streams, SERVING_PER_PEER * len(sources), len(todo)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            self.store.sync(blob)  # what was written before a cut is kept for the next try
        except BlobError as exc:
            errors.append(exc)
        if errors:
            raise errors[0]
        if self.store.has(blob):
            log.info("blob fetched", extra={"blob": blob[:16], "bytes": answer.size, "sources": len(sources),
                                            "seconds": round(self._clock() - started, 3)})
        else:
            held = self.store.info(blob)
            raise BlobError(f"could not fetch blob {blob[:16]}… ({held.held} of {held.chunks} chunks verified; "
                            "they are kept)", hint="the peers holding it are gone, busy or lying; run the task again")
