"""The receive path: random frames never crash it; every bad message is refused and counted by reason."""

from __future__ import annotations

import time

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gaia_comm_zmq import wire
from gaia_core.envelope import seal
from gaia_core.inbound import Gate
from gaia_core.testing.conformance.transport import RecordingHandler, wait_for

frames_strategy = st.lists(st.binary(max_size=200), min_size=1, max_size=4)


@given(frames_strategy)
@settings(max_examples=500, deadline=None)
def test_parse_refuses_or_returns(frames: list[bytes]) -> None:
    try:
        mtype, corr, env = wire.parse(frames, 1 << 20)
    except wire.Refused as refused:
        assert refused.reason in wire.REASONS
    else:
        assert mtype in wire.TYPES and corr >= 0 and env.body == frames[1]


@pytest.fixture
def server(build, dial_raw):
    transport, record = build()
    gate = Gate(RecordingHandler())
    yield transport, dial_raw(transport.start(gate, record)), gate


def _rejected(transport, gate: Gate) -> int:
    """Refusals by the transport (wire) and by the kernel's gate (authentication)."""
    return sum(transport.stats()["rejected"].values()) + sum(gate.stats().values())


def _still_serves(transport, raw) -> None:
    """A valid request on the same connection is still answered."""
    raw.send_request("echo", b"alive")
    assert raw.sock.poll(10_000), "no reply to a valid request after the bad ones"
    mtype, _, env = wire.parse(raw.sock.recv_multipart(), 1 << 20)
    assert mtype == wire.REPLY and env.body == b"alive"


def test_random_frames_are_counted_and_harmless(server) -> None:
    transport, raw, gate = server
    sent = 0

    @given(frames_strategy)
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(frames: list[bytes]) -> None:
        nonlocal sent
        raw.sock.send_multipart(frames)
        sent += 1

    fuzz()
    wait_for(lambda: _rejected(transport, gate) >= sent, f"{sent} random messages to be refused", timeout=20)
    assert _rejected(transport, gate) == sent
    _still_serves(transport, raw)


@pytest.mark.parametrize("reason", ["unsigned", "forged", "stale", "replayed", "version", "malformed"])
def test_bad_messages_are_refused_by_reason(server, reason: str) -> None:
    transport, raw, gate = server
    env = seal(raw.identity, "echo", b"x", now=time.time() - 3600 if reason == "stale" else None)
    head = msgpack.unpackb(wire.header(wire.REQUEST, 1, env))
    if reason == "unsigned":
        head[7] = b""
    elif reason == "forged":
        head[7] = bytes([head[7][0] ^ 1]) + head[7][1:]
    elif reason == "version":
        head[0] = 99
    frames = [msgpack.packb(head), env.body]
    if reason == "malformed":
        frames.append(b"extra")
    raw.sock.send_multipart(frames)
    if reason == "replayed":
        raw.sock.send_multipart(frames)
        assert raw.sock.poll(10_000)  # the first copy is answered
        raw.sock.recv_multipart()
    kernel = reason in ("unsigned", "forged", "stale", "replayed")  # authentication: the gate's, not the wire's
    counts = gate.stats if kernel else lambda: transport.stats()["rejected"]
    # unsigned on a CurveZMQ connection: the gate would take the channel, but no signed record binds its key
    counted = "unbound_channel" if reason == "unsigned" else reason
    wait_for(lambda: counts().get(counted, 0) == 1, f"one {counted} refusal")
    _still_serves(transport, raw)


def test_oversized_is_refused(build, dial_raw) -> None:
    transport, record = build(own={"max_message_bytes": 4096})
    raw = dial_raw(transport.start(Gate(RecordingHandler()), record))
    raw.send_request("echo", b"x" * 3000 * 2)
    wait_for(lambda: transport.stats()["rejected"].get("oversized", 0) == 1, "one oversized refusal")
    _still_serves(transport, raw)


def test_a_flood_of_requests_pauses_reading_instead_of_queueing_without_bound(build) -> None:
    import concurrent.futures

    from gaia_core.testing.conformance.transport import RecordingHandler, wait_for

    server, server_rec = build(own={"workers": 1})
    client, client_rec = build()
    address = server.start(Gate(RecordingHandler()), server_rec)
    client.start(Gate(RecordingHandler()), client_rec)
    client.connect(address)
    wait_for(lambda: any(p.node_id == server_rec.node_id and p.state == "up" for p in client.peers()), "to meet")
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(lambda i: client.request(server_rec.node_id, "slow", b"0.03", timeout=20), range(36)))
    assert replies == [b"0.03"] * 36  # every request answered, none lost
    assert server.stats()["counts"]["paused"] >= 1  # and the handlers' backlog stopped the reading
