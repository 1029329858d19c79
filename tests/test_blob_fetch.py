"""Fetching a blob from peers (the Fetcher and BlobServer, with real stores and real encoded messages; the
transport between them is a function here, the devnet test in test_blob_devnet.py uses the real one):
several peers share the chunks, a lying peer is struck and its chunks come from another, a busy peer is
asked again, a cut resumes from the chunks already verified, and the per-peer serving bound holds."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from gaia_core import codec
from gaia_core.blobs import CHUNK_SIZE, BlobError, BlobStore
from gaia_core.blobs.fetch import Fetcher
from gaia_core.blobs.protocol import (
    CHUNKS,
    SERVING_PER_PEER,
    SERVING_TOTAL,
    BlobServer,
    ChunkRequest,
    decode_reply,
    encode_reply,
)
from gaia_core.envelope import seal
from gaia_core.errors import CodecError, NodeError
from gaia_core.identity import Identity

SIZE = 5 * CHUNK_SIZE + 999


@pytest.fixture(scope="module")
def source_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "weights.bin"
    path.write_bytes(bytes(range(256)) * (SIZE // 256) + b"\x07" * (SIZE % 256))
    return path


class Network:
    """Peers answering ``blob.chunks`` from their own stores; ``liars`` flip a byte of every chunk they send."""

    def __init__(self, root: Path, source: Path, names: list[str], liars: tuple[str, ...] = ()) -> None:
        self.servers: dict[str, BlobServer] = {}
        self.asked: Counter[str] = Counter()
        self.liars = liars
        self.cut_after: int | None = None
        self.lock = threading.Lock()
        self.me = Identity.generate()
        for name in names:
            store = BlobStore(root / name)
            self.blob = store.add_file(source).id
            self.servers[name] = BlobServer(store, may_read=lambda _peer, _blob: True)

    def request(self, peer: str, kind: str, body: bytes, timeout: float) -> bytes:
        assert kind == CHUNKS and timeout > 0
        with self.lock:
            self.asked[peer] += 1
            if self.cut_after is not None and sum(self.asked.values()) > self.cut_after:
                raise NodeError("connection cut")
        if peer not in self.servers:
            raise NodeError(f"unknown peer {peer}")
        reply = self.servers[peer].on_request(seal(self.me, CHUNKS, body))
        if peer in self.liars:
            answer = decode_reply(reply)
            bad = [attrs.evolve(c, data=bytes([c.data[0] ^ 1]) + c.data[1:]) for c in answer.chunks]
            reply = encode_reply(attrs.evolve(answer, chunks=bad))
        return reply


def _fetcher(tmp_path: Path, net: Network, struck: list[str] | None = None) -> Fetcher:
    record: Callable[[str], None] = (struck.append if struck is not None else lambda _peer: None)
    return Fetcher(BlobStore(tmp_path / "worker"), net.request, record)


def test_chunks_come_from_several_peers_and_verify(tmp_path: Path, source_file: Path) -> None:
    net = Network(tmp_path, source_file, ["a", "b"])
    fetcher = _fetcher(tmp_path, net)
    fetcher.ensure([net.blob], ["missing-peer", "a", "b"], timeout=30)
    assert fetcher.store.path(net.blob).read_bytes() == source_file.read_bytes()
    assert net.asked["a"] > 1 and net.asked["b"] > 1  # both served chunks
    assert fetcher.store.info(net.blob).fetched
    asked = sum(net.asked.values())
    fetcher.ensure([net.blob], ["a"], timeout=30)  # here already: nothing asked
    assert sum(net.asked.values()) == asked


def test_a_lying_peer_is_struck_and_another_serves_its_chunks(tmp_path: Path, source_file: Path) -> None:
    net = Network(tmp_path, source_file, ["liar", "honest"], liars=("liar",))
    struck: list[str] = []
    fetcher = _fetcher(tmp_path, net, struck)
    fetcher.ensure([net.blob], ["liar", "honest"], timeout=30)
    assert fetcher.store.path(net.blob).read_bytes() == source_file.read_bytes()
    assert struck == ["liar"] and fetcher.banned("liar") and not fetcher.banned("honest")


def test_only_liars_means_an_error_and_nothing_kept(tmp_path: Path, source_file: Path) -> None:
    net = Network(tmp_path, source_file, ["liar"], liars=("liar",))
    fetcher = _fetcher(tmp_path, net)
    with pytest.raises(BlobError, match=r"could not fetch blob .* \(0 of 6 chunks verified"):
        fetcher.ensure([net.blob], ["liar"], timeout=30)
    with pytest.raises(BlobError, match="no peer holds blob"):
        fetcher.ensure([net.blob], ["liar"], timeout=30)  # banned: not asked again
    with pytest.raises(BlobError, match="no peer holds blob"):
        fetcher.ensure(["0" * 64], ["nobody"], timeout=5)


def test_a_cut_resumes_and_re_fetches_no_verified_chunk(tmp_path: Path, source_file: Path) -> None:
    net = Network(tmp_path, source_file, ["a"])
    net.cut_after = 4  # the size question, then three chunks (one stream each way may be in flight)
    fetcher = _fetcher(tmp_path, net)
    with pytest.raises(BlobError, match="chunks verified; they are kept"):
        fetcher.ensure([net.blob], ["a"], timeout=30)
    held = fetcher.store.info(net.blob).held
    assert 0 < held < 6
    fetcher.store.close()
    net.cut_after, net.asked = None, Counter()
    again = _fetcher(tmp_path, net)  # a new process on the same store
    again.ensure([net.blob], ["a"], timeout=30)
    assert again.store.path(net.blob).read_bytes() == source_file.read_bytes()
    assert net.asked["a"] == 1 + (6 - held)  # the size question, then only the missing chunks


def test_the_server_bounds_requests_per_peer(tmp_path: Path, source_file: Path) -> None:
    net = Network(tmp_path, source_file, ["a"])
    server = net.servers["a"]
    server._serving[net.me.node_id] = SERVING_PER_PEER  # as many in flight as one peer may have
    body = codec.encode(ChunkRequest(net.blob, (0,)))
    with pytest.raises(NodeError, match="busy"):
        server.on_request(seal(net.me, CHUNKS, body))
    other = Identity.generate()
    answer = decode_reply(server.on_request(seal(other, CHUNKS, body)))
    assert [c.index for c in answer.chunks] == [0]
    assert decode_reply(server.on_request(seal(other, CHUNKS, codec.encode(ChunkRequest("1" * 64))))).missing


def test_answers_carry_chunks_after_their_frame_and_malformed_ones_are_refused(tmp_path: Path,
                                                                              source_file: Path) -> None:
    net = Network(tmp_path, source_file, ["a"])
    body = net.servers["a"].on_request(seal(net.me, CHUNKS, codec.encode(ChunkRequest(net.blob, (5, 0)))))
    answer = decode_reply(body)
    data = source_file.read_bytes()
    assert [(c.index, c.data) for c in answer.chunks] == [(5, data[5 * CHUNK_SIZE:]), (0, data[:CHUNK_SIZE])]
    assert body.endswith(data[5 * CHUNK_SIZE:] + data[:CHUNK_SIZE])  # the bytes as they are, after the frame
    assert encode_reply(answer) == body
    head = int.from_bytes(body[:4], "big")
    for bad, why in [(b"", "cannot be well formed"), (body[:-1], "not the length its frame says"),
                     (body + b"x", "not the length its frame says"), (b"\xff\xff\xff\xff" + body[4:], "does not fit"),
                     (body[:4] + b"\x00" * head + body[4 + head:], "not valid msgpack")]:
        with pytest.raises(CodecError, match=why):
            decode_reply(bad)


def test_whether_a_peer_holds_a_blob_is_answered_even_when_it_is_busy(tmp_path: Path, source_file: Path) -> None:
    net = Network(tmp_path, source_file, ["a"])
    server = net.servers["a"]
    server._serving.update({net.me.node_id: SERVING_PER_PEER, "other": SERVING_TOTAL})
    with pytest.raises(NodeError, match="busy"):
        server.on_request(seal(net.me, CHUNKS, codec.encode(ChunkRequest(net.blob, (0,)))))
    answer = decode_reply(server.on_request(seal(net.me, CHUNKS, codec.encode(ChunkRequest(net.blob)))))
    assert not answer.missing and answer.size == SIZE and not answer.chunks


def test_peers_are_asked_at_once_and_silent_ones_do_not_hold_up_the_fetch(tmp_path: Path,
                                                                         source_file: Path) -> None:
    net = Network(tmp_path, source_file, ["late", "a"])
    release, answered = threading.Event(), []

    def request(peer: str, kind: str, body: bytes, timeout: float) -> bytes:
        if peer.startswith("silent"):  # up, but answers only when its request times out (or the test ends)
            release.wait(timeout)
            answered.append(peer)
            raise NodeError("timed out")
        return net.request(peer, kind, body, timeout)

    fetcher = Fetcher(BlobStore(tmp_path / "worker"), request, lambda _peer: None)
    peers = [f"silent{i}" for i in range(5)] + ["late", "a"]
    try:
        fetcher.ensure([net.blob], peers, timeout=30)
        assert answered == []  # the fetch did not wait for a silent peer (each had 5 s)
    finally:
        release.set()
    assert fetcher.store.path(net.blob).read_bytes() == source_file.read_bytes()
    assert net.asked["late"] >= 1 and net.asked["a"] >= 1  # both asked, both sources


FULL_DISK_CHILD = """
import resource, signal, sys
from pathlib import Path
from gaia_core.blobs import BlobError, BlobStore
from gaia_core.blobs.fetch import Fetcher
from gaia_core.blobs.protocol import BlobServer
from gaia_core.envelope import seal
from gaia_core.identity import Identity

root, source = Path(sys.argv[1]), Path(sys.argv[2])
server = BlobServer(BlobStore(root / "server"), may_read=lambda _peer, _blob: True)
blob = server.store.add_file(source).id
me = Identity.generate()
worker = BlobStore(root / "worker")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))  # no file may grow past 2 MiB: a full disk
fetcher = Fetcher(worker, lambda peer, kind, body, timeout: server.on_request(seal(me, kind, body)), print)
try:
    fetcher.ensure([blob], ["a"], timeout=30)
except BlobError as exc:
    print(exc)
print(len(worker.blobs()), sorted(p.name for p in (root / "worker" / "partial").iterdir()))
"""


def test_no_room_for_a_blob_is_one_error_and_nothing_half_made(tmp_path: Path, source_file: Path) -> None:
    run = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(tmp_path), str(source_file)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    message, left = run.stdout.splitlines()
    assert message.startswith("cannot make room for blob ") and "free space under" in message
    assert left == "0 []"
