"""The node's side of blobs, at its seams: a peer that sends a chunk that does not verify is struck by the
node itself (the dispatcher backs it off, its trust streak is reset), the task ends ``error`` saying why,
and nothing of the bad chunk is kept."""

from __future__ import annotations

from pathlib import Path

import attrs
from inprocess import build_node, load_plugins, make_home

from gaia_core.blobs import BlobStore
from gaia_core.blobs.protocol import BlobServer, decode_reply, encode_reply
from gaia_core.envelope import seal
from gaia_core.identity import Identity
from gaia_core.model import Status, Task, Verdict
from gaia_core.roles import PeerInfo


def test_a_peer_sending_a_bad_chunk_is_struck_by_the_node(tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w" * 3_000_000)
    liar = Identity.generate()
    server = BlobServer(BlobStore(tmp_path / "liar"), may_read=lambda _peer, _blob: True)
    blob = server.store.add_file(source).id

    def lying_request(peer: str, kind: str, body: bytes, *, timeout: float) -> bytes:
        assert peer == liar.node_id
        answer = decode_reply(server.on_request(seal(liar, kind, body)))
        flipped = [attrs.evolve(c, data=c.data[:-1] + b"x") for c in answer.chunks]
        return encode_reply(attrs.evolve(answer, chunks=flipped))

    node = build_node(make_home(tmp_path, "worker"), load_plugins())
    try:
        node.transport.request = lying_request  # the peer, not the node, is faked
        node.transport.peers = lambda: [PeerInfo(liar.node_id, "tcp://127.0.0.1:1")]
        for _ in range(3):
            node.jobs.spot.trust.record(liar.node_id, Verdict("valid"))
        task = Task(module_id="a" * 64, blobs=(blob,))
        result = node.blobs.prepare(task, liar.node_id)
        assert result is not None and result.status is Status.ERROR and "could not fetch blob" in result.message
        assert node.jobs.dispatcher.peers[liar.node_id].strikes == 1
        assert node.jobs.spot.trust.streak(liar.node_id) == 0
        assert node.blobs.store.info(blob).held == 0
        node.blobs.release(task)
    finally:
        node.blobs.close()
        node.store.close()
