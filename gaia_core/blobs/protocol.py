"""The ``blob.chunks`` request between nodes, and the side that serves it within per-peer bounds.

A peer asks for up to :data:`MAX_CHUNKS_PER_REQUEST` chunks of one blob (none: only its size and
root); the answer carries the size and root of the blob (their hash is the blob id, so they cannot
lie) and each chunk with its inclusion proof, or ``missing`` when this node holds no complete copy.
On the wire an answer is a small codec frame (everything but the chunks' bytes) followed by the bytes
of the chunks, so a chunk is never packed into msgpack nor unpacked from it (:func:`encode_reply`,
:func:`decode_reply`).
A node serves at most :data:`SERVING_PER_PEER` such requests of one peer at a time and
:data:`SERVING_TOTAL` in all (the rest of the transport's handlers stay free for task messages);
past that it answers "busy" and the asker tries again or asks another peer. A request for no chunks
reads only the index and is answered at once, whatever else is being served.

Who may read what: a node answers a peer about a blob (its size, root and chunks) only when the
operator pinned the blob here (pinning publishes it) or ``may_read(peer, blob)`` says so (the node:
a task naming it that this node submitted is out at that peer now). Any other peer is told ``missing``,
the answer it would get for a blob this node does not hold, so it learns nothing of what is here.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from attrs import field, frozen, validators as v

from gaia_core import codec
from gaia_core.blobs.merkle import CHUNK_SIZE, HASH_SIZE
from gaia_core.blobs.store import BlobStore, UnknownBlob
from gaia_core.errors import CodecError, NodeError
from gaia_core.model import Envelope

#: The request kind.
CHUNKS = "blob.chunks"
#: Chunks one request may ask for (each up to CHUNK_SIZE bytes in the answer).
MAX_CHUNKS_PER_REQUEST = 4
#: Requests of one peer served at once.
SERVING_PER_PEER = 2
#: Requests served at once, all peers together.
SERVING_TOTAL = 3
#: Seconds a peer's leave to read a blob is remembered once ``may_read`` gave it.
GRANT_S = 10.0
#: Seconds a refusal is remembered (a peer asking again and again costs the node one look per second).
DENY_S = 1.0
#: Answers of ``may_read`` remembered at most (past that they are asked again).
MAX_GRANTS = 4096
#: Hashes in one inclusion proof at most (a tree of 2**48 chunks).
MAX_PROOF = 48
#: The largest frame of an answer without its chunks' bytes (the chunks' proofs, the blob's size and root).
MAX_HEAD_BYTES = MAX_CHUNKS_PER_REQUEST * (MAX_PROOF + 2) * (HASH_SIZE + 2) + 4096
#: The largest encoded answer.
MAX_REPLY_BYTES = 4 + MAX_HEAD_BYTES + MAX_CHUNKS_PER_REQUEST * CHUNK_SIZE
_HEAD_LENGTH = struct.Struct("!I")

_HEX64 = v.matches_re(r"[0-9a-f]{64}")
_INDEX = (v.instance_of(int), v.ge(0), v.lt(1 << 48))


def _ints(items: Iterable[int]) -> tuple[int, ...]:
    return tuple(items)


def _hashes(items: Iterable[bytes]) -> tuple[bytes, ...]:
    return tuple(items)


@frozen
class ChunkRequest:
    """Chunks ``indexes`` of blob ``blob`` (none: only the blob's size and root)."""

    blob: str = field(validator=_HEX64)
    indexes: tuple[int, ...] = field(default=(), converter=_ints,
                                     validator=v.deep_iterable(v.and_(*_INDEX), v.max_len(MAX_CHUNKS_PER_REQUEST)))


@frozen
class Chunk:
    """One chunk and the sibling hashes from its leaf to the root."""

    index: int = field(validator=_INDEX)
    data: bytes = field(validator=(v.instance_of(bytes), v.max_len(CHUNK_SIZE)), repr=lambda b: f"<{len(b)} bytes>")
    proof: tuple[bytes, ...] = field(converter=_hashes, validator=v.deep_iterable(
        v.and_(v.instance_of(bytes), v.min_len(HASH_SIZE), v.max_len(HASH_SIZE)), v.max_len(MAX_PROOF)))


def _chunks(items: Iterable[Chunk]) -> tuple[Chunk, ...]:
    return tuple(items)


@frozen
class _ChunkHead:
    """A chunk on the wire: its index, length (its bytes follow the answer's frame) and proof."""

    index: int = field(validator=_INDEX)
    length: int = field(validator=(v.instance_of(int), v.ge(0), v.le(CHUNK_SIZE)))
    proof: tuple[bytes, ...] = field(converter=_hashes, validator=v.deep_iterable(
        v.and_(v.instance_of(bytes), v.min_len(HASH_SIZE), v.max_len(HASH_SIZE)), v.max_len(MAX_PROOF)))


def _heads(items: Iterable[_ChunkHead]) -> tuple[_ChunkHead, ...]:
    return tuple(items)


@frozen
class _ReplyHead:
    """An answer on the wire without its chunks' bytes."""

    blob: str = field(validator=_HEX64)
    missing: bool = field(default=False, validator=v.instance_of(bool))
    size: int = field(default=0, validator=_INDEX)
    root: bytes = field(default=b"", validator=(v.instance_of(bytes), v.max_len(HASH_SIZE)))
    chunks: tuple[_ChunkHead, ...] = field(default=(), converter=_heads, validator=v.deep_iterable(
        v.instance_of(_ChunkHead), v.max_len(MAX_CHUNKS_PER_REQUEST)))


@frozen
class ChunkReply:
    """The answer: the blob's size and Merkle root and the chunks asked for, or ``missing``."""

    blob: str = field(validator=_HEX64)
    missing: bool = field(default=False, validator=v.instance_of(bool))
    size: int = field(default=0, validator=_INDEX)
    root: bytes = field(default=b"", validator=(v.instance_of(bytes), v.max_len(HASH_SIZE)))
    chunks: tuple[Chunk, ...] = field(default=(), converter=_chunks, validator=v.deep_iterable(
        v.instance_of(Chunk), v.max_len(MAX_CHUNKS_PER_REQUEST)))


def encode_reply(reply: ChunkReply) -> bytes:
    """``reply`` on the wire: the length of its frame, the frame, then the chunks' bytes (one copy of each)."""
    head = codec.encode(_ReplyHead(reply.blob, reply.missing, reply.size, reply.root,
                                   [_ChunkHead(c.index, len(c.data), c.proof) for c in reply.chunks]))
    return b"".join([_HEAD_LENGTH.pack(len(head)), head, *(c.data for c in reply.chunks)])


def decode_reply(body: bytes) -> ChunkReply:
    """The answer in ``body`` (from :func:`encode_reply`), validated; CodecError when it is malformed."""
    if len(body) < _HEAD_LENGTH.size or len(body) > MAX_REPLY_BYTES:
        raise CodecError(f"a blob answer of {len(body)} bytes cannot be well formed")
    (length,) = _HEAD_LENGTH.unpack_from(body)
    end = _HEAD_LENGTH.size + length
    if length > MAX_HEAD_BYTES or end > len(body):
        raise CodecError(f"a blob answer's frame of {length} bytes does not fit its {len(body)} bytes")
    head = codec.decode(memoryview(body)[_HEAD_LENGTH.size:end], _ReplyHead, max_bytes=MAX_HEAD_BYTES)
    if sum(c.length for c in head.chunks) != len(body) - end:
        raise CodecError("a blob answer's chunks are not the length its frame says")
    chunks = []
    for c in head.chunks:
        chunks.append(Chunk(c.index, body[end:end + c.length], c.proof))
        end += c.length
    return ChunkReply(head.blob, head.missing, head.size, head.root, chunks)


class BlobServer:
    """Answers ``blob.chunks`` requests from the complete blobs of a store, within the per-peer bounds, to the
    peers that may read them: pinned blobs to any, the others to those ``may_read(peer, blob)`` lets."""

    def __init__(self, store: BlobStore, *, may_read: Callable[[str, str], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._may_read = may_read
        self._clock = clock
        self._grants: dict[tuple[str, str], tuple[float, bool]] = {}  # (peer, blob) -> (until, may it read)
        self._serving: Counter[str] = Counter()
        self._lock = threading.Lock()

    def allowed(self, peer: str, blob: str) -> bool:
        """True when ``peer`` may read ``blob`` here: it is pinned, or ``may_read`` lets it (a leave is
        remembered GRANT_S, a refusal DENY_S)."""
        now = self._clock()
        with self._lock:
            until, allowed = self._grants.get((peer, blob), (0.0, False))
        if until > now:
            return allowed
        allowed = self.store.pinned(blob) or self._may_read(peer, blob)
        with self._lock:
            if len(self._grants) >= MAX_GRANTS:
                self._grants.clear()
            self._grants[(peer, blob)] = (now + (GRANT_S if allowed else DENY_S), allowed)
        return allowed

    def on_request(self, envelope: Envelope) -> bytes:
        """The encoded :class:`ChunkReply` to an authenticated request; NodeError("busy") past the bounds.

        A request for no chunks (does this node hold the blob?) reads only the index: it is answered at
        once, without taking a serving slot (the transport's own per-peer bounds still apply).
        """
        request = codec.decode(envelope.body, ChunkRequest, max_bytes=4096)
        peer = envelope.sender
        if not self.store.has(request.blob) or not self.allowed(peer, request.blob):  # nothing leaks of what is here
            return encode_reply(ChunkReply(request.blob, missing=True))
        if not request.indexes:
            return encode_reply(self._answer(request))
        with self._lock:
            if self._serving[peer] >= SERVING_PER_PEER or sum(self._serving.values()) >= SERVING_TOTAL:
                raise NodeError("busy: serving as many blob chunks as it will at once; ask again shortly")
            self._serving[peer] += 1
        try:
            return encode_reply(self._answer(request))
        finally:
            with self._lock:
                self._serving[peer] -= 1
                if not self._serving[peer]:
                    del self._serving[peer]

    def _answer(self, request: ChunkRequest) -> ChunkReply:
        try:
            size, root = self.store.describe(request.blob)
            chunks = []
            for index in request.indexes:
                data, proof = self.store.read_chunk(request.blob, index)
                chunks.append(Chunk(index, data, proof))
        except UnknownBlob:
            return ChunkReply(request.blob, missing=True)
        return ChunkReply(request.blob, size=size, root=root, chunks=chunks)
