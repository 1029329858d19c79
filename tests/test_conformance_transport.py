"""The transport conformance suite passes a small correct transport and fails broken ones."""

from __future__ import annotations

import concurrent.futures
from typing import Callable

import pytest

from gaia_core.envelope import open_envelope, seal
from gaia_core.errors import GaiaError, NodeError, RejectedError
from gaia_core.identity import Identity
from gaia_core.model import NodeRecord
from gaia_core.roles import MessageHandler, PeerInfo, Transport
from gaia_core.testing.conformance.transport import MakeTransport, TransportTests, started_pair


class MemoryTransport:
    """A correct in-process transport: peers are objects in a shared dict, handlers are called directly."""

    def __init__(self, network: dict[str, MemoryTransport], identity: Identity) -> None:
        self.network = network
        self.identity = identity
        self.handler: MessageHandler | None = None
        self.record: NodeRecord | None = None
        self.links: dict[str, MemoryTransport] = {}
        self.states: dict[str, str] = {}
        self.stopped = False
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)

    def start(self, handler: MessageHandler, record: NodeRecord) -> str:
        self.handler, self.record = handler, record
        self.network[record.node_id] = self
        return f"mem://{record.node_id}"

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for other in self.links.values():
            other.set_state(self.identity.node_id, "down")
        self.pool.shutdown(wait=False, cancel_futures=True)

    def set_state(self, node_id: str, state: str) -> None:
        self.states[node_id] = state
        self.handler.on_peer(self.info(node_id))

    def info(self, node_id: str) -> PeerInfo:
        other = self.links[node_id]
        return PeerInfo(node_id=node_id, address=f"mem://{node_id}", state=self.states[node_id], record=other.record)

    def connect(self, address: str) -> None:
        other = self.network[address.removeprefix("mem://")]
        self.links[other.identity.node_id], other.links[self.identity.node_id] = other, self
        self.set_state(other.identity.node_id, "up")
        other.set_state(self.identity.node_id, "up")

    def request(self, peer_id: str, kind: str, body: bytes, *, timeout: float = 10.0) -> bytes:
        other = self.links.get(peer_id)
        if self.stopped or other is None or other.stopped:
            raise NodeError(f"cannot reach {peer_id[:12]}")
        env = open_envelope(seal(self.identity, kind, body))
        future = other.pool.submit(other.handler.on_request, env)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise NodeError("timed out") from None
        except GaiaError as exc:
            raise NodeError(f"refused: {exc}") from None

    def announce(self, kind: str, body: bytes) -> None:
        for other in self.links.values():
            if not other.stopped:
                other.handler.on_announce(seal(self.identity, kind, body))

    def peers(self) -> list[PeerInfo]:
        return [self.info(n) for n in self.links]


class DropsAnnouncements(MemoryTransport):
    def announce(self, kind: str, body: bytes) -> None:
        pass


class CorruptsReplies(MemoryTransport):
    def request(self, peer_id: str, kind: str, body: bytes, *, timeout: float = 10.0) -> bytes:
        return super().request(peer_id, kind, body, timeout=timeout)[::-1] + b"!"


class LeaksErrors(MemoryTransport):
    """Lets the handler's own exception escape instead of a NodeError, and ignores unknown peers."""

    def request(self, peer_id: str, kind: str, body: bytes, *, timeout: float = 10.0) -> bytes:
        if peer_id not in self.links:
            return b""
        return self.links[peer_id].handler.on_request(seal(self.identity, kind, body))


class NeverDown(MemoryTransport):
    def stop(self) -> None:
        self.stopped = True


def maker(cls: type[MemoryTransport]) -> MakeTransport:
    network: dict[str, MemoryTransport] = {}

    def make() -> tuple[Transport, NodeRecord]:
        identity = Identity.generate()
        return cls(network, identity), NodeRecord(node_id=identity.node_id, curve_key=identity.curve_public)

    return make


class TestMemoryTransportConforms(TransportTests):
    @pytest.fixture
    def make_transport(self) -> MakeTransport:
        return maker(MemoryTransport)


def test_memory_transport_satisfies_the_protocol() -> None:
    assert isinstance(MemoryTransport({}, Identity.generate()), Transport)


#: How a suite check fails: an assertion, pytest.fail, or (LeaksErrors) the handler's own error escaping.
FAILURES = (AssertionError, pytest.fail.Exception, RejectedError)


@pytest.mark.parametrize(("cls", "check"), [
    (DropsAnnouncements, TransportTests.test_announce_reaches_peer),
    (CorruptsReplies, TransportTests.test_request_echo),
    (CorruptsReplies, TransportTests.test_large_body),
    (LeaksErrors, TransportTests.test_refusal_is_node_error),
    (LeaksErrors, TransportTests.test_unknown_peer_is_node_error),
    (NeverDown, TransportTests.test_stopped_peer_goes_down),
])
def test_suite_fails_a_broken_transport(cls: type[MemoryTransport], check: Callable, monkeypatch) -> None:
    monkeypatch.setattr("gaia_core.testing.conformance.transport.WAIT_S", 0.5)
    with started_pair(maker(cls)) as pair:
        with pytest.raises(FAILURES):
            check(TransportTests(), pair)
