"""Blobs against a hostile peer (in-process nodes, and a real node process asked over CURVE from outside): who
may read a blob of a node (a peer that was sent a task naming it, or any
peer when the operator pinned it; any other peer is told the blob is missing, so it learns nothing), and the
cap never evicts a blob that a job of this node still names (its workers fetch it from here); unfinished
fetches are bounded in number; an index that cannot be written ends a fetch with one BlobError and keeps
nothing unverified."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from attackers import RawDealer
from inprocess import build_node, load_plugins, make_home
from nodes import call, gaia, running_devnet

from gaia_core import codec
from gaia_core.blobs import CHUNK_SIZE, BlobError, BlobStore, blob_id, protocol, store as store_module
from gaia_core.blobs.fetch import Fetcher
from gaia_core.blobs.merkle import chunk_count, leaf_hash, verify
from gaia_core.blobs.protocol import CHUNKS, GRANT_S, BlobServer, ChunkReply, ChunkRequest, decode_reply
from gaia_core.envelope import seal
from gaia_core.identity import Identity
from gaia_core.jobs.dispatcher import Slot
from gaia_core.model import Task
from gaia_core.node import Node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    built = build_node(make_home(tmp_path_factory.mktemp("blob-security"), "submitter"), load_plugins())
    try:
        yield built
    finally:
        built.blobs.close()
        built.store.close()


def _ask(node: Node, peer: Identity, blob: str, indexes: tuple[int, ...] = ()) -> ChunkReply:
    """What ``node`` answers ``peer`` (a real sealed envelope through the node's request handler)."""
    return decode_reply(node.on_request(seal(peer, CHUNKS, codec.encode(ChunkRequest(blob, indexes)))))


def _add(node: Node, path: Path, content: bytes, *, pinned: bool = False) -> str:
    path.write_bytes(content)
    return node.blobs.store.add_file(path, pinned=pinned).id


def _served(tmp_path: Path, *, chunks: int) -> tuple[BlobServer, str, Path]:
    """A blob of ``chunks`` chunks stored under ``tmp_path/server`` and served to any peer: (server, its id, its
    source file)."""
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * (chunks * CHUNK_SIZE // 256))
    server = BlobServer(BlobStore(tmp_path / "server"), may_read=lambda _peer, _blob: True)
    return server, server.store.add_file(source).id, source


def test_a_peer_reads_a_blob_only_while_it_was_sent_a_task_naming_it(node: Node, tmp_path: Path) -> None:
    private = _add(node, tmp_path / "input.bin", b"private input " * 100_000)
    stranger, worker = Identity.generate(), Identity.generate()
    for indexes in ((), (0,)):  # neither whether it is here nor its bytes
        assert _ask(node, stranger, private, indexes) == ChunkReply(private, missing=True)
    slot = Slot("job-1", 0, Task(module_id="a" * 64, blobs=(private,)), redundancy=1)
    node.jobs.dispatcher.add(slot)
    try:
        slot.sent[worker.node_id] = time.monotonic() + 60  # the task is out at the worker
        answer = _ask(node, worker, private, (1,))
        size = len(b"private input " * 100_000)
        assert not answer.missing and answer.size == size and [c.index for c in answer.chunks] == [1]
        chunk = answer.chunks[0]
        assert verify(answer.root, chunk_count(size), 1, leaf_hash(chunk.data), chunk.proof)
        assert _ask(node, stranger, private, (0,)).missing  # the task was not sent to it
    finally:
        node.jobs.dispatcher.remove(slot)


def test_a_pinned_blob_is_published_to_any_peer(node: Node, tmp_path: Path) -> None:
    public = _add(node, tmp_path / "weights.bin", b"w" * (CHUNK_SIZE + 3), pinned=True)
    answer = _ask(node, Identity.generate(), public, (1,))
    assert not answer.missing and answer.chunks[0].data == b"www"
    node.blobs.store.pin(public, False)
    assert _ask(node, Identity.generate(), public).missing


def test_a_leave_to_read_lasts_grant_s_and_a_refusal_deny_s(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    (tmp_path / "b").write_bytes(b"b" * 10)
    blob = store.add_file(tmp_path / "b").id
    now = [0.0]
    asked: list[tuple[str, str]] = []
    sent = {("w", blob)}

    def may_read(peer: str, wanted: str) -> bool:
        asked.append((peer, wanted))
        return (peer, wanted) in sent

    server = BlobServer(store, may_read=may_read, clock=lambda: now[0])
    assert server.allowed("w", blob) and server.allowed("w", blob) and asked == [("w", blob)]
    assert not server.allowed("x", blob) and not server.allowed("x", blob)  # a refusal is remembered too
    assert asked == [("w", blob), ("x", blob)]
    sent.clear()  # the task came back
    now[0] = GRANT_S + 0.1
    assert not server.allowed("w", blob)
    store.close()


def test_the_cap_never_evicts_a_blob_a_job_not_yet_released_names(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    named, other, new = (tmp_path / "named", tmp_path / "other", tmp_path / "new")
    for path, byte in ((named, b"n"), (other, b"o"), (new, b"x")):
        path.write_bytes(byte * (2 * CHUNK_SIZE))
    store.set_cap(5 * CHUNK_SIZE)
    first = store.add_file(named).id  # the least recently used
    store.use("job-1", [first])  # a job out at workers names it
    second = store.add_file(other).id
    store.add_file(new)  # over the cap: the LRU unnamed blob goes
    assert {b.id for b in store.blobs()} >= {first} and second not in {b.id for b in store.blobs()}
    store.end_uses(["job-1"])  # released: it goes (privacy)
    assert first not in {b.id for b in store.blobs()}
    store.close()


def test_unfinished_fetches_are_bounded_and_a_held_one_is_kept(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "MAX_PARTIAL", 3)
    store = BlobStore(tmp_path / "blobs")
    ids = []
    for i in range(6):  # a peer that answers the size and root of tiny blobs, then never a chunk
        root = leaf_hash(bytes([i]) * 10)
        ids.append(blob_id(10, root))
        if i == 0:
            store.hold([ids[0]])  # a running task is fetching it
        assert store.begin(ids[-1], 10, root) == [0]
    partial = {b.id for b in store.blobs()}
    assert len(partial) == 3 and ids[0] in partial and ids[-1] in partial
    assert sorted(p.name for p in (tmp_path / "blobs" / "partial").iterdir()) == sorted(partial)
    store.close()


def test_an_index_that_cannot_be_written_ends_the_fetch_with_one_error_and_a_retry_completes(
        tmp_path: Path) -> None:
    server, blob, source = _served(tmp_path, chunks=3)
    worker = BlobStore(tmp_path / "worker")
    worker._db.execute("PRAGMA busy_timeout = 200")  # a locked index fails fast, not after 10 s
    me = Identity.generate()
    other = sqlite3.connect(tmp_path / "worker" / "index.db", isolation_level=None, check_same_thread=False)
    lock, locked = threading.Lock(), [False]

    def request(peer: str, kind: str, body: bytes, timeout: float) -> bytes:
        with lock:
            if ChunkRequest(blob) != codec.decode(body, ChunkRequest) and not locked[0]:
                other.execute("BEGIN EXCLUSIVE")  # another process holds the index (or the disk is full)
                locked[0] = True
        return server.on_request(seal(me, kind, body))

    fetcher = Fetcher(worker, request, lambda _peer: None)
    with pytest.raises(BlobError, match="cannot use the blob index .*locked"):
        fetcher.ensure([blob], ["server"], timeout=20)
    assert not worker.has(blob) and not (tmp_path / "worker" / "data" / blob).exists()
    other.execute("COMMIT")
    other.close()
    fetcher.ensure([blob], ["server"], timeout=20)
    assert b"".join(worker.chunks(blob)) == source.read_bytes()
    worker.close()
    server.store.close()


def test_tasks_fetching_one_blob_at_once_ask_each_chunk_once_and_leave_no_lock(tmp_path: Path) -> None:
    server, blob, _ = _served(tmp_path, chunks=6)
    me, asked, lock = Identity.generate(), Counter[int](), threading.Lock()

    def request(peer: str, kind: str, body: bytes, timeout: float) -> bytes:
        with lock:
            asked.update(codec.decode(body, ChunkRequest).indexes)
        time.sleep(0.01)  # a real peer takes a moment: the tasks overlap
        return server.on_request(seal(me, kind, body))

    fetcher = Fetcher(BlobStore(tmp_path / "worker"), request, lambda _peer: None)
    tasks = [threading.Thread(target=fetcher.ensure, args=([blob], ["server"]), kwargs={"timeout": 20})
             for _ in range(4)]
    for task in tasks:
        task.start()
    for task in tasks:
        task.join(timeout=30)
    assert fetcher.store.has(blob) and set(asked.values()) == {1} and len(asked) == 6
    assert not fetcher._fetching
    fetcher.store.close()
    server.store.close()


def test_a_worker_whose_task_was_taken_back_mid_fetch_gets_no_more_chunks(node: Node, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "GRANT_S", 0.0)  # the leave is looked up on every request
    private = _add(node, tmp_path / "input.bin", bytes(range(256)) * (8 * CHUNK_SIZE // 256))
    worker = Identity.generate()
    slot = Slot("job-2", 0, Task(module_id="b" * 64, blobs=(private,)), redundancy=1)
    node.jobs.dispatcher.add(slot)
    slot.sent[worker.node_id] = time.monotonic() + 60
    served = [0]

    def request(peer: str, kind: str, body: bytes, timeout: float) -> bytes:
        if codec.decode(body, ChunkRequest).indexes:
            served[0] += 1
            if served[0] == 3:  # the job is cancelled: the dispatcher forgets the slot
                node.jobs.dispatcher.remove(slot)
        return node.on_request(seal(worker, kind, body))

    fetcher = Fetcher(BlobStore(tmp_path / "worker"), request, lambda _peer: None, streams=1)
    with pytest.raises(BlobError, match="could not fetch blob"):
        fetcher.ensure([private], [node.node_id], timeout=20)
    assert fetcher.store.info(private).held < 8 and not fetcher.store.has(private)
    fetcher.store.close()


def test_a_peer_answering_with_another_chunk_than_asked_is_struck(tmp_path: Path) -> None:
    server, blob, _ = _served(tmp_path, chunks=4)
    me, struck = Identity.generate(), list[str]()

    def request(peer: str, kind: str, body: bytes, timeout: float) -> bytes:
        asked = codec.decode(body, ChunkRequest)
        if asked.indexes and asked.indexes != (0,):  # a valid chunk with its valid proof, of another index
            body = codec.encode(ChunkRequest(blob, (0,)))
        return server.on_request(seal(me, kind, body))

    fetcher = Fetcher(BlobStore(tmp_path / "worker"), request, struck.append)
    with pytest.raises(BlobError, match="could not fetch blob"):
        fetcher.ensure([blob], ["liar"], timeout=20)
    assert struck == ["liar"] and fetcher.banned("liar")
    fetcher.store.close()
    server.store.close()


def test_a_node_process_tells_a_stranger_nothing_of_its_private_blobs(tmp_path: Path) -> None:
    (tmp_path / "input.bin").write_bytes(b"a submitter's private input")
    (tmp_path / "model.bin").write_bytes(b"published weights")
    with running_devnet(tmp_path / "net", 1) as (home,):
        private = json.loads(gaia(home, "blob", "add", str(tmp_path / "input.bin"), "--json").stdout)["id"]
        public = json.loads(gaia(home, "blob", "add", str(tmp_path / "model.bin"), "--pin", "--json").stdout)["id"]
        stranger = RawDealer(call(home, "status")["address"], Identity.generate())
        try:
            answers = {}
            for blob in (private, public):  # over CURVE from outside, each request signed by the stranger
                stranger.send(CHUNKS, codec.encode(ChunkRequest(blob, (0,))))
                assert stranger.answered(10.0), "the node did not answer"
                answers[blob] = decode_reply(stranger.sock.recv_multipart()[-1])
        finally:
            stranger.close()
    assert answers[private] == ChunkReply(private, missing=True)
    assert answers[public].chunks[0].data == b"published weights"
