"""Conformance suite for the transport role.

Subclass :class:`TransportTests` and provide a ``make_transport`` fixture: a
callable that returns a new, unstarted transport on loopback with its own
identity, together with the NodeRecord it should start with. Use a short
heartbeat (the suite waits for a stopped peer to be reported down). The suite starts each
transport with the kernel's :class:`~gaia_core.inbound.Gate` as its handler, as the node does,
so a transport that delivers forged, stale or replayed envelopes, or vouches for a channel key
that is not the sender's, fails it::

    class TestMyTransport(TransportTests):
        @pytest.fixture
        def make_transport(self, tmp_path):
            def make():
                ...
                return transport, record
            return make

Every wait in the suite is bounded in time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import attrs
import pytest

from gaia_core import codec
from gaia_core.envelope import open_envelope
from gaia_core.errors import NodeError, RejectedError
from gaia_core.inbound import RECORD, Gate
from gaia_core.model import Envelope, NodeRecord
from gaia_core.roles import PeerInfo, Transport

#: A factory of unstarted transports and the record each starts with.
MakeTransport = Callable[[], "tuple[Transport, NodeRecord]"]
#: How long the suite waits for anything to happen on loopback.
WAIT_S = 20.0


class RecordingHandler:
    """A MessageHandler that echoes ``echo``, refuses ``refuse``, sleeps on ``slow``, and records the rest."""

    def __init__(self) -> None:
        self.requests: list[Envelope] = []
        self.announces: list[Envelope] = []
        self.peer_events: list[PeerInfo] = []
        self._lock = threading.Lock()

    def on_request(self, envelope: Envelope) -> bytes:
        with self._lock:
            self.requests.append(envelope)
        if envelope.kind == "refuse":
            raise RejectedError("test", "refused on purpose by the test handler")
        if envelope.kind == "slow":
            time.sleep(float(envelope.body))
        return envelope.body

    def on_announce(self, envelope: Envelope) -> None:
        with self._lock:
            self.announces.append(envelope)

    def on_peer(self, peer: PeerInfo) -> None:
        with self._lock:
            self.peer_events.append(peer)


@attrs.define
class Node:
    """One started transport of a pair."""

    transport: Transport
    record: NodeRecord
    handler: RecordingHandler
    gate: Gate
    address: str

    @property
    def node_id(self) -> str:
        return self.record.node_id


def wait_for(condition: Callable[[], object], what: str, timeout: float | None = None) -> None:
    """Poll ``condition`` until true, failing the test with ``what`` after ``timeout`` (default WAIT_S) seconds."""
    timeout = WAIT_S if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}")


def _up(node: Node, other: Node) -> bool:
    return any(p.node_id == other.node_id and p.state == "up" for p in node.transport.peers())


@contextlib.contextmanager
def started_pair(make: MakeTransport) -> Iterator[tuple[Node, Node]]:
    """Two started transports, the second connected to the first, each seeing the other up; stopped after."""
    nodes: list[Node] = []
    try:
        for _ in range(2):
            transport, record = make()
            handler = RecordingHandler()
            gate = Gate(handler)
            address = transport.start(gate, record)
            nodes.append(Node(transport, record, handler, gate, address))
        a, b = nodes
        b.transport.connect(a.address)
        wait_for(lambda: _up(a, b) and _up(b, a), "two transports to see each other up")
        yield a, b
    finally:
        for node in nodes:
            node.transport.stop()


class TransportTests:
    """The transport contract of :class:`gaia_core.roles.Transport`, on loopback."""

    @pytest.fixture
    def pair(self, make_transport: MakeTransport) -> Iterator[tuple[Node, Node]]:
        with started_pair(make_transport) as nodes:
            yield nodes

    def test_start_returns_an_address(self, pair: tuple[Node, Node]) -> None:
        for node in pair:
            assert isinstance(node.address, str) and node.address

    def test_peers_know_each_other(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        for me, other in ((a, b), (b, a)):
            peers = {p.node_id: p for p in me.transport.peers()}
            assert other.node_id in peers, "a connected peer must be listed"
            info = peers[other.node_id]
            assert info.state == "up" and info.address
            assert info.record is not None and info.record.node_id == other.node_id
            assert me.node_id not in peers, "a transport must not list itself"

    def test_on_peer_told_up(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        wait_for(lambda: any(p.node_id == b.node_id and p.state == "up" for p in a.handler.peer_events),
                 "on_peer(up) for the connected peer")

    def test_request_echo(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        assert b.transport.request(a.node_id, "echo", b"ping 1", timeout=10) == b"ping 1"
        assert a.transport.request(b.node_id, "echo", b"", timeout=10) == b""

    def test_request_envelope_is_verified_and_from_sender(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        b.transport.request(a.node_id, "echo", b"who", timeout=10)
        env = [e for e in a.handler.requests if e.body == b"who"][-1]
        assert env.sender == b.node_id and env.kind == "echo"
        assert open_envelope(env) is env, "the handler must get a correctly signed envelope"

    def test_large_body(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        body = bytes(range(256)) * 8192  # 2 MiB
        assert b.transport.request(a.node_id, "echo", body, timeout=20) == body

    def test_concurrent_requests_are_correlated(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        errors: list[str] = []

        def worker(n: int) -> None:
            for i in range(25):
                body = f"{n}-{i}".encode()
                got = b.transport.request(a.node_id, "echo", body, timeout=20)
                if got != body:
                    errors.append(f"sent {body!r}, got {got!r}")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors[:3]

    def test_refusal_is_node_error(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        with pytest.raises(NodeError, match="refused on purpose"):
            b.transport.request(a.node_id, "refuse", b"x", timeout=10)

    def test_timeout_is_node_error(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        with pytest.raises(NodeError):
            b.transport.request(a.node_id, "slow", b"3", timeout=0.5)

    def test_unknown_peer_is_node_error(self, pair: tuple[Node, Node]) -> None:
        _, b = pair
        with pytest.raises(NodeError):
            b.transport.request("0" * 64, "echo", b"x", timeout=1)

    def test_announce_reaches_peer(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        a.transport.announce("note", b"hello all")
        wait_for(lambda: any(e.body == b"hello all" for e in b.handler.announces), "the announcement to arrive")
        env = next(e for e in b.handler.announces if e.body == b"hello all")
        assert env.sender == a.node_id and env.kind == "note"
        assert open_envelope(env) is env

    def test_stopped_peer_goes_down(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        a.transport.stop()
        wait_for(lambda: any(p.node_id == a.node_id and p.state == "down" for p in b.handler.peer_events),
                 "on_peer(down) after the peer stopped")
        assert {p.node_id: p.state for p in b.transport.peers()}[a.node_id] == "down"

    def test_stop_is_idempotent_and_final(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        b.transport.stop()
        b.transport.stop()
        with pytest.raises(NodeError):
            b.transport.request(a.node_id, "echo", b"x", timeout=1)

    def test_honest_traffic_is_never_refused(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        for i in range(5):
            assert b.transport.request(a.node_id, "echo", b"%d" % i, timeout=10) == b"%d" % i
            assert a.transport.request(b.node_id, "echo", b"%d" % i, timeout=10) == b"%d" % i
        a.transport.announce("note", b"counted")
        wait_for(lambda: any(e.body == b"counted" for e in b.handler.announces), "the announcement to arrive")
        assert len([e for e in a.handler.requests if e.sender == b.node_id]) == 5, "each request delivered once"
        assert a.gate.stats() == {} and b.gate.stats() == {}, \
            f"the kernel refused honest traffic (a transport forwarded a forged, stale or replayed envelope): " \
            f"{a.gate.stats()} {b.gate.stats()}"

    def test_channel_is_the_senders_once_its_record_is_known(self, pair: tuple[Node, Node]) -> None:
        a, b = pair
        records = {n.node_id: getattr(n.transport, "record", None) or n.record for n in pair}  # with its extension
        for me in pair:
            me.transport.announce(RECORD, codec.encode(records[me.node_id]))
        for me, other in ((a, b), (b, a)):
            for scheme in records[other.node_id].channel_keys():  # none for a transport that authenticates no channel
                def bound(me: Node = me, other: Node = other, scheme: str = scheme) -> bool:
                    return me.gate.bound_key(other.node_id, scheme) is not None

                wait_for(bound, "a signed record to bind a channel")
        for me, other in ((a, b), (b, a)):
            assert me.transport.request(other.node_id, "echo", b"bound", timeout=10) == b"bound"
        assert "wrong_channel" not in a.gate.stats() and "wrong_channel" not in b.gate.stats(), \
            "the transport vouched for a channel key that is not the sender's"
        assert a.gate.stats() == {} and b.gate.stats() == {}
