"""A peer back with a new Curve key and port is dialled there; an older record never rolls a peer back."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from inprocess import build_node, load_plugins, make_home, wait_for

from gaia_comm_zmq.transport import ZmqTransport
from gaia_core import codec
from gaia_core.config import Config, Home
from gaia_core.envelope import seal
from gaia_core.identity import Identity
from gaia_core.inbound import RECORD, Gate
from gaia_core.model import Envelope, NodeRecord
from gaia_core.roles import NodeContext, PeerInfo

Start = Callable[..., tuple[ZmqTransport, str]]


class Echo:
    """The node's side of a transport: answers each request with its body."""

    def on_request(self, envelope: Envelope) -> bytes:
        return envelope.body

    def on_announce(self, envelope: Envelope) -> None:
        pass

    def on_peer(self, peer: PeerInfo) -> None:
        pass


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start a transport in a fresh home (so a fresh Curve key) on a free port; all stopped at the end."""
    started: list[ZmqTransport] = []
    homes = itertools.count()

    def make(identity: Identity, *, bootstrap: tuple[str, ...] = (), updated_at: float | None = None
             ) -> tuple[ZmqTransport, str]:
        home = Home(tmp_path / f"home{next(homes)}")
        home.root.mkdir()
        config = Config()
        config = attrs.evolve(config, node=attrs.evolve(config.node, listen="tcp://127.0.0.1:*"),
                              network=attrs.evolve(config.network, heartbeat_s=0.2, down_after_s=1.5,
                                                           bootstrap=list(bootstrap)))
        transport = ZmqTransport(NodeContext(config=config, home=home, identity=identity,
                                             log=logging.getLogger("gaia.test")))
        started.append(transport)
        record = NodeRecord(node_id=identity.node_id, updated_at=time.time() if updated_at is None else updated_at)
        return transport, transport.start(Gate(Echo()), record)

    yield make
    for transport in started:
        transport.stop()


def _peer(transport: ZmqTransport, node_id: str) -> PeerInfo | None:
    return next((p for p in transport.peers() if p.node_id == node_id), None)


def test_a_peer_back_with_a_new_key_and_port_is_dialled_there_and_an_older_record_is_not_followed(start) -> None:
    hub, hub_address = start(Identity.generate())
    worker = Identity.generate()
    first, first_address = start(worker, bootstrap=(hub_address,))
    first_at = first.record.updated_at  # type: ignore[union-attr]
    wait_for(lambda: (p := _peer(hub, worker.node_id)) is not None and p.state == "up", timeout=15,
             what="the worker up at the hub")
    first.stop()
    # Back with another home (so another Curve key) on another port, with a newer record.
    second, second_address = start(worker, bootstrap=(hub_address,))
    assert second_address != first_address
    wait_for(lambda: (p := _peer(hub, worker.node_id)) is not None and p.address == second_address
             and p.state == "up", timeout=15, what="the hub dialling the worker at its new address and key")
    assert hub.request(worker.node_id, "echo", b"hi", timeout=5) == b"hi"
    # The same node announcing an older record (delivered late, or an old instance) is not followed.
    third, _ = start(worker, bootstrap=(hub_address,), updated_at=first_at)
    wait_for(lambda: _peer(third, hub.record.node_id) is not None, timeout=15,  # type: ignore[union-attr]
             what="the hub answering the old instance's hello")
    assert hub.request(worker.node_id, "echo", b"again", timeout=5) == b"again"  # after the hello, on one thread
    peer = _peer(hub, worker.node_id)
    assert peer is not None and peer.address == second_address
    assert peer.record is not None and peer.record.updated_at == second.record.updated_at  # type: ignore[union-attr]


def test_the_node_keeps_the_newest_record_of_a_peer(tmp_path: Path) -> None:
    node = build_node(make_home(tmp_path, "n"), load_plugins())
    try:
        peer = Identity.generate()
        newer = NodeRecord(node_id=peer.node_id, name="newer", updated_at=time.time())
        older = attrs.evolve(newer, name="older", updated_at=newer.updated_at - 30)
        node.gate.on_announce(seal(peer, RECORD, codec.encode(newer)))
        node.gate.on_announce(seal(peer, RECORD, codec.encode(older)))  # a fresh envelope, an older record
        assert node.peer_records[peer.node_id].name == "newer"
        node.on_peer(PeerInfo(node_id=peer.node_id, address="", state="up", last_seen=0.0, rtt_s=None,
                              record=older))
        assert node.peer_records[peer.node_id].name == "newer"
        later = attrs.evolve(newer, name="later", updated_at=newer.updated_at + 1)
        node.gate.on_announce(seal(peer, RECORD, codec.encode(later)))
        assert node.peer_records[peer.node_id].name == "later"
    finally:
        node.store.close()
