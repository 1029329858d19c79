"""Floods on real sockets: what one peer can make a node hold or do is bounded, counted and survivable."""

from __future__ import annotations

import socket
import threading
import time

import msgpack
import pytest
import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gaia_comm_zmq import wire
from gaia_core import codec
from gaia_core.envelope import seal
from gaia_core.identity import Identity
from gaia_core.inbound import Gate
from gaia_core.model import NodeRecord
from gaia_core.testing.conformance.transport import RecordingHandler, wait_for

#: Hellos sent by the flood: more than the ~1,100 that used to exhaust the node's sockets.
HELLOS = 1_500


def _handled(transport, gate: Gate) -> int:
    return sum(transport.stats()["rejected"].values()) + sum(gate.stats().values())


def _up(transport, node_id: str) -> bool:
    return any(p.node_id == node_id and p.state == "up" for p in transport.peers())


def test_a_hello_flood_from_one_connection_is_bounded_and_the_node_still_stops(build, dial_raw) -> None:
    transport, record = build()
    gate = Gate(RecordingHandler())
    address = transport.start(gate, record)
    raw = dial_raw(address)
    for i in range(HELLOS):  # each hello names a new node id (same curve key) and a dial-back address
        ident = Identity(Ed25519PrivateKey.generate())
        port = 20_000 + i
        rec = NodeRecord(node_id=ident.node_id, transport={"curve": raw.curve.public},
                         addresses=(f"tcp://127.0.0.1:{port}",))
        env = seal(ident, wire.HELLO, msgpack.packb([codec.encode(rec), []], use_bin_type=True))
        raw.sock.send_multipart([wire.header(wire.REQUEST, i + 1, env), env.body])
    replies = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and replies + _handled(transport, gate) < HELLOS:
        if raw.sock.poll(100):
            raw.sock.recv_multipart()
            replies += 1
    rejected = transport.stats()["rejected"]
    assert replies + _handled(transport, gate) == HELLOS, (replies, rejected)
    assert replies == 1, "a connection introduces one node; its other hellos are refused"
    assert rejected.get("hello_rate", 0) > 0.9 * HELLOS, "past a small burst, hellos are refused before any signature"
    assert rejected.get("hello_rate", 0) + rejected.get("hello_identity", 0) == HELLOS - 1
    dials = transport.stats()["counts"].get("dials", 0)
    assert dials <= 1, f"one connection made the node dial {dials} addresses"

    # A real peer still gets in, and the node stops promptly.
    other, other_rec = build()
    other.start(Gate(RecordingHandler()), other_rec)
    other.connect(address)
    wait_for(lambda: _up(other, record.node_id) and _up(transport, other_rec.node_id), "a real peer to get in")
    assert other.request(record.node_id, "echo", b"still here", timeout=10) == b"still here"
    stopper = threading.Thread(target=transport.stop)
    stopper.start()
    stopper.join(timeout=10)
    assert not stopper.is_alive(), "the node did not stop after the flood"


def test_hints_and_dial_backs_cannot_fill_the_dial_table(build, dial_raw) -> None:
    transport, record = build(own={"max_pending_dials": 8, "connect_burst": 100, "max_connections_per_address": 100})
    gate = Gate(RecordingHandler())
    address = transport.start(gate, record)
    for i in range(40):  # forty connections, each a distinct node that asks to be dialled back at a dead port
        raw = dial_raw(address)
        rec = NodeRecord(node_id=raw.identity.node_id, transport={"curve": raw.curve.public},
                         addresses=(f"tcp://127.0.0.1:{21_000 + i}",))
        hints = [[Identity.generate().node_id, f"tcp://127.0.0.1:{22_000 + i}#{'ab' * 32}"]]
        env = seal(raw.identity, wire.HELLO, msgpack.packb([codec.encode(rec), hints], use_bin_type=True))
        raw.sock.send_multipart([wire.header(wire.REQUEST, 1, env), env.body])
    wait_for(lambda: transport.stats()["rejected"].get("dials_pending_full", 0) >= 40 * 2 - 8,
             "dials past the pending bound to be refused")
    assert transport.stats()["counts"]["dials"] <= 8


def test_announcements_are_bounded_in_size_and_rate(build, dial_raw) -> None:
    transport, record = build(own={"max_announce_bytes": 16 << 10, "announce_rate": 2.0, "announce_burst": 5})
    handler = RecordingHandler()
    gate = Gate(handler)
    address = transport.start(gate, record)
    big = dial_raw(address)
    for _ in range(20):  # 1 MiB records: refused on arrival, never handed to the node to keep
        env = seal(big.identity, "node.record", b"\x00" * (1 << 20))
        big.sock.send_multipart([wire.header(wire.ANNOUNCE, 0, env), env.body])
    chatty = dial_raw(address)
    for i in range(100):
        env = seal(chatty.identity, "note", b"%d" % i)
        chatty.sock.send_multipart([wire.header(wire.ANNOUNCE, 0, env), env.body])

    def decided() -> bool:
        rejected = transport.stats()["rejected"]
        return (rejected.get("announce_oversized", 0) == 20
                and rejected.get("announce_rate", 0) + len(handler.announces) == 100)

    wait_for(decided, "every announcement to be decided")
    assert not [e for e in handler.announces if e.sender == big.identity.node_id]
    assert 5 <= len(handler.announces) <= 8, "a burst, then the refill rate (a few per second)"


def _try_send(raw, body: bytes) -> None:
    """Send a request without waiting: a DEALER whose handshake was refused has nowhere to send."""
    env = seal(raw.identity, "echo", body)
    try:
        raw.sock.send_multipart([wire.header(wire.REQUEST, 1, env), env.body], zmq.NOBLOCK)
    except zmq.Again:
        pass


def test_connection_floods_are_refused_at_the_handshake(build, dial_raw) -> None:
    transport, record = build(own={"connect_burst": 5, "connect_rate": 0.5})
    address = transport.start(Gate(RecordingHandler()), record)
    raws = [dial_raw(address) for _ in range(30)]  # thirty connections at once from one address
    wait_for(lambda: transport.stats()["rejected"].get("connect_rate", 0) >= 20, "handshakes past the burst refused")
    answered = 0
    for raw in raws:
        _try_send(raw, b"x")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        answered += sum(bool(raw.sock.poll(0)) and bool(raw.sock.recv_multipart()) for raw in raws)
        time.sleep(0.1)
    assert 1 <= answered <= 8, f"{answered} of 30 connections got through a burst of 5"


def test_open_connections_are_bounded(build, dial_raw) -> None:
    transport, record = build(own={"max_connections": 4})
    address = transport.start(Gate(RecordingHandler()), record)
    host, port = address.partition("#")[0].removeprefix("tcp://").rsplit(":", 1)
    idle = [socket.create_connection((host, int(port))) for _ in range(8)]  # connected, never a handshake
    try:
        raw = dial_raw(address)
        _try_send(raw, b"over the bound")
        wait_for(lambda: transport.stats()["rejected"].get("connections_full", 0) >= 1,
                 "a handshake past the bound refused")
    finally:
        for sock in idle:
            sock.close()
    late = dial_raw(address)  # once the idle ones are gone, peers get in again
    late.send_request("echo", b"room again")
    assert late.sock.poll(15_000), "no answer once connections were free again"


def test_one_flooding_address_cannot_fill_the_connections_for_everyone(build, dial_raw) -> None:
    transport, record = build(own={"max_connections": 4, "max_connections_per_address": 2})
    address = transport.start(Gate(RecordingHandler()), record)
    endpoint, _, key = address.partition("#")
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    idle = [socket.create_connection((host, int(port))) for _ in range(8)]  # all from 127.0.0.1, never a handshake
    try:
        wait_for(lambda: transport.stats()["counts"]["connections"] == 8, "the idle connections to be counted")
        flooder = dial_raw(address)
        _try_send(flooder, b"one more from the flooding address")
        wait_for(lambda: transport.stats()["rejected"].get("connections_per_address", 0) >= 1,
                 "the flooding address's handshake refused")
        other = dial_raw(f"tcp://127.0.0.2:0;{host}:{port}#{key}")  # another address (loopback too)
        other.send_request("echo", b"room for me")
        assert other.sock.poll(10_000), "a peer from another address was shut out by one address's connections"
    finally:
        for sock in idle:
            sock.close()
    assert "connections_full" not in transport.stats()["rejected"]


class _BigAnswers(RecordingHandler):
    """Answers "big" with ANSWER_BYTES, everything else with its own body."""

    def on_request(self, envelope):
        return b"x" * ANSWER_BYTES if envelope.kind == "big" else super().on_request(envelope)


#: One answer's size (a 4-chunk blob read) and the answers asked for by the peer that never reads.
ANSWER_BYTES, ASKED = 4 << 20, 200


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / (1 << 20)


def _non_reader(dial_raw, address: str):
    """A bare peer with a one-message queue and a tiny TCP buffer: it reads nothing until it calls recv, so the
    answers it asks for pile up on the node's side."""
    raw = dial_raw(address)
    endpoint = address.partition("#")[0]
    raw.sock.disconnect(endpoint)  # the options apply to connections made after them
    raw.sock.rcvhwm, raw.sock.rcvbuf = 1, 4096
    raw.sock.connect(endpoint)
    return raw


def test_a_peer_that_never_reads_its_answers_cannot_grow_the_node_past_the_bound(build, dial_raw) -> None:
    bound = 16 << 20
    transport, record = build(own={"max_reply_bytes_per_peer": bound})
    address = transport.start(Gate(_BigAnswers()), record)
    other, other_rec = build()
    other.start(Gate(RecordingHandler()), other_rec)
    other.connect(address)
    wait_for(lambda: _up(other, record.node_id), "a reading peer to get in")
    raw = _non_reader(dial_raw, address)
    before = peak = _rss_mib()
    for _ in range(ASKED):  # 800 MiB of answers asked for
        raw.send_request("big", b"")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sum(transport.stats()["rejected"].values()) < ASKED - 8:
        peak = max(peak, _rss_mib())
        assert other.request(record.node_id, "echo", b"served", timeout=5) == b"served"
    peak = max(peak, _rss_mib())
    rejected = transport.stats()["rejected"]
    assert sum(rejected.get(r, 0) for r in ("reply_unread", "busy_unread", "busy_peer")) >= ASKED - 8, rejected
    assert rejected.get("reply_unread", 0) > 0, "answers past the bound are dropped, not queued"
    print(f"RSS {before:.0f} -> peak {peak:.0f} MiB")
    # Unbounded, the node would hold the 800 MiB asked for; the slack is the handler threads' malloc arenas
    # and the answers in the handlers' hands (max_pending_requests_per_peer of them at most).
    assert peak - before < bound / (1 << 20) + 184, f"RSS grew {peak - before:.0f} MiB (bound 16 MiB)"
    assert other.request(record.node_id, "echo", b"still served", timeout=5) == b"still served"


@pytest.mark.parametrize(("own", "reason"), [
    ({"max_pending_requests_per_peer": 2}, "busy_peer"),
    ({"max_pending_request_bytes_per_peer": 1024}, "busy_peer"),
    ({"max_pending_requests": 2}, "busy"),
    ({"max_pending_request_bytes": 1024}, "busy"),
])
def test_requests_past_the_handler_queue_bounds_are_answered_busy_at_once(build, dial_raw, own, reason) -> None:
    transport, record = build(own={"workers": 1, **own})
    release = threading.Event()

    class Slow(RecordingHandler):
        def on_request(self, envelope):
            release.wait(10)
            return envelope.body

    address = transport.start(Gate(Slow()), record)
    raw = dial_raw(address)
    try:
        for _ in range(5):  # two of them fit every bound above (each is about 500 bytes)
            raw.send_request("slow", b"x" * 200)
        busy = []
        deadline = time.monotonic() + 10
        while len(busy) < 3 and time.monotonic() < deadline:
            if raw.sock.poll(100):
                busy.append(raw.sock.recv_multipart()[-1])
        assert len(busy) == 3 and all(b.startswith(b"busy: ") and b"retry after" in b for b in busy), busy
        wait_for(lambda: transport.stats()["rejected"].get(reason) == 3, f"3 refusals counted {reason}", timeout=5)
    finally:
        release.set()


def test_a_peer_past_the_unread_bound_is_told_busy_until_it_reads_its_answers(build, dial_raw) -> None:
    transport, record = build(own={"max_reply_bytes_per_peer": 10 << 20})  # not a multiple of the answers
    address = transport.start(Gate(_BigAnswers()), record)
    raw = _non_reader(dial_raw, address)
    for _ in range(6):  # 24 MiB of answers asked for, none read
        raw.send_request("big", b"")
    wait_for(lambda: transport.stats()["rejected"].get("reply_unread", 0) >= 1, "an answer dropped past the bound")
    raw.send_request("echo", b"late")
    wait_for(lambda: transport.stats()["rejected"].get("busy_unread", 0) >= 1, "the next request answered busy")
    bodies = []
    while raw.sock.poll(2000) and len(bodies) < 20:  # now it reads what it was sent
        bodies.append(raw.sock.recv_multipart()[-1])
    assert any(b.startswith(b"busy: ") for b in bodies) and any(len(b) == ANSWER_BYTES for b in bodies)
    raw.send_request("echo", b"read it all")
    assert raw.sock.poll(5000), "no answer once the peer had read its answers"
    assert raw.sock.recv_multipart()[-1] == b"read it all"


def test_answers_unread_by_all_peers_together_are_bounded(build, dial_raw) -> None:
    transport, record = build(own={"max_reply_bytes": 12 << 20})  # each peer alone is under its 32 MiB
    address = transport.start(Gate(_BigAnswers()), record)
    for raw in (_non_reader(dial_raw, address) for _ in range(3)):
        for _ in range(3):
            raw.send_request("big", b"")
    wait_for(lambda: transport.stats()["rejected"].get("replies_full", 0) >= 1, "an answer dropped past the total")
    reader = dial_raw(address)
    reader.send_request("echo", b"small answers still go")
    assert reader.sock.poll(5000) and reader.sock.recv_multipart()[-1] == b"small answers still go"
