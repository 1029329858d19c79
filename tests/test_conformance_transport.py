"""The transport conformance suite passes a small correct transport and fails broken ones.

The broken ones include every way a transport can weaken authentication now that the kernel's
gate does it: forwarding forged, stale, unsigned or replayed envelopes, and vouching for a
channel key that is not the sender's.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Callable

import attrs
import pytest

from gaia_core.envelope import seal
from gaia_core.errors import GaiaError, NodeError, RejectedError
from gaia_core.identity import Identity
from gaia_core.model import Envelope, NodeRecord
from gaia_core.roles import Channel, MessageHandler, PeerInfo, Transport
from gaia_core.testing.conformance.transport import MakeTransport, TransportTests, started_pair


class MemoryTransport:
    """A correct in-process transport: peers are objects in a shared dict, handlers are called directly."""

    def __init__(self, network: dict[str, MemoryTransport], identity: Identity) -> None:
        self.network = network
        self.identity = identity
        self.key = os.urandom(32)  # what its "connections" authenticate, as a Curve key would
        self.handler: MessageHandler | None = None
        self.record: NodeRecord | None = None
        self.links: dict[str, MemoryTransport] = {}
        self.states: dict[str, str] = {}
        self.stopped = False
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)

    def start(self, handler: MessageHandler, record: NodeRecord) -> str:
        self.handler, self.record = handler, attrs.evolve(record, transport={"curve": self.key})  # its extension
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

    def channel(self) -> Channel:
        """What the receiving end's "connection" authenticated: this transport's key."""
        return Channel("curve", self.key)

    def outgoing(self, kind: str, body: bytes) -> list[Envelope]:
        """The envelopes delivered for one message (an honest transport: exactly the one it sealed)."""
        return [seal(self.identity, kind, body)]

    def request(self, peer_id: str, kind: str, body: bytes, *, timeout: float = 10.0) -> bytes:
        other = self.links.get(peer_id)
        if self.stopped or other is None or other.stopped:
            raise NodeError(f"cannot reach {peer_id[:12]}")
        futures = [other.pool.submit(other.handler.on_request, env, self.channel())
                   for env in self.outgoing(kind, body)]
        future = futures[0]
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise NodeError("timed out") from None
        except GaiaError as exc:
            raise NodeError(f"refused: {exc}") from None

    def announce(self, kind: str, body: bytes) -> None:
        for other in self.links.values():
            if not other.stopped:
                for env in self.outgoing(kind, body):
                    other.handler.on_announce(env, self.channel())

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


class ForwardsForged(MemoryTransport):
    """Delivers envelopes whose body was changed after signing (as if it never checked what came in)."""

    def outgoing(self, kind: str, body: bytes) -> list[Envelope]:
        return [attrs.evolve(env, body=env.body + b"!") for env in super().outgoing(kind, body)]


class ForwardsStale(MemoryTransport):
    """Delivers envelopes an hour old."""

    def outgoing(self, kind: str, body: bytes) -> list[Envelope]:
        return [seal(self.identity, kind, body, now=time.time() - 3600)]


class ForwardsUnsigned(MemoryTransport):
    """Strips signatures and vouches for no channel."""

    def outgoing(self, kind: str, body: bytes) -> list[Envelope]:
        return [attrs.evolve(env, signature=b"") for env in super().outgoing(kind, body)]

    def channel(self) -> None:  # type: ignore[override]
        return None


class ForwardsReplays(MemoryTransport):
    """Delivers every envelope twice (a replay it never filtered)."""

    def outgoing(self, kind: str, body: bytes) -> list[Envelope]:
        return super().outgoing(kind, body) * 2


class VouchesWrongChannel(MemoryTransport):
    """Vouches for a curve key that is not the sender's."""

    def channel(self) -> Channel:
        return Channel("curve", os.urandom(32))


def maker(cls: type[MemoryTransport]) -> MakeTransport:
    network: dict[str, MemoryTransport] = {}

    def make() -> tuple[Transport, NodeRecord]:
        identity = Identity.generate()
        return cls(network, identity), NodeRecord(node_id=identity.node_id)

    return make


class TestMemoryTransportConforms(TransportTests):
    @pytest.fixture
    def make_transport(self) -> MakeTransport:
        return maker(MemoryTransport)


def test_memory_transport_satisfies_the_protocol() -> None:
    assert isinstance(MemoryTransport({}, Identity.generate()), Transport)


#: How a suite check fails: an assertion, pytest.fail, the handler's own error escaping (LeaksErrors),
#: or the kernel's refusal reaching the caller as a NodeError.
FAILURES = (AssertionError, pytest.fail.Exception, RejectedError, NodeError)


@pytest.mark.parametrize(("cls", "check", "reason"), [
    (DropsAnnouncements, TransportTests.test_announce_reaches_peer, None),
    (CorruptsReplies, TransportTests.test_request_echo, None),
    (CorruptsReplies, TransportTests.test_large_body, None),
    (LeaksErrors, TransportTests.test_refusal_is_node_error, None),
    (LeaksErrors, TransportTests.test_unknown_peer_is_node_error, None),
    (NeverDown, TransportTests.test_stopped_peer_goes_down, None),
    (ForwardsForged, TransportTests.test_request_echo, "forged"),
    (ForwardsForged, TransportTests.test_announce_reaches_peer, "forged"),
    (ForwardsStale, TransportTests.test_request_echo, "stale"),
    (ForwardsUnsigned, TransportTests.test_request_echo, "unsigned"),
    (ForwardsReplays, TransportTests.test_honest_traffic_is_never_refused, "replayed"),
    (VouchesWrongChannel, TransportTests.test_channel_is_the_senders_once_its_record_is_known, "wrong_channel"),
])
def test_suite_fails_a_broken_transport(cls: type[MemoryTransport], check: Callable, reason: str | None,
                                        monkeypatch) -> None:
    monkeypatch.setattr("gaia_core.testing.conformance.transport.WAIT_S", 0.5)
    with started_pair(maker(cls)) as pair:
        with pytest.raises(FAILURES):
            check(TransportTests(), pair)
        if reason is not None:  # caught because the kernel's gate refused what the transport forwarded
            assert any(node.gate.stats().get(reason) for node in pair), [node.gate.stats() for node in pair]
