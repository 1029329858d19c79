"""The per-message path (issue #14): frames sent and read without pyzmq's multipart helpers, and the
announcements of one drain handed to the handler pool in one call, one failure not losing the rest."""

from __future__ import annotations

import threading

import pytest
import zmq

from gaia_comm_zmq import wire
from gaia_core.envelope import seal
from gaia_core.identity import Identity
from gaia_core.inbound import Gate
from gaia_core.testing.conformance.transport import RecordingHandler, wait_for


@pytest.fixture
def pipe():
    """A connected inproc PUSH/PULL pair."""
    ctx = zmq.Context()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.bind("inproc://hot-path")
    pull.connect("inproc://hot-path")
    yield push, pull
    ctx.destroy(linger=0)


def test_send_and_recv_keep_a_message_whole_and_its_frames_apart(pipe) -> None:
    push, pull = pipe
    big = memoryview(b"z" * (1 << 20))  # zero-copy: a buffer is sent as it is
    wire.send(push, [b"head", big, b""], block=True)
    wire.send(push, [b"alone"], block=True)
    wait_for(lambda: pull.poll(0), "the first message")
    assert [f.bytes for f in wire.recv(pull)] == [b"head", bytes(big), b""]
    assert [f.bytes for f in wire.recv(pull)] == [b"alone"]
    with pytest.raises(zmq.Again):
        wire.recv(pull)


def test_send_does_not_wait_when_the_peer_is_full() -> None:
    ctx = zmq.Context()
    try:
        push = ctx.socket(zmq.PUSH)
        push.sndhwm = 1
        push.bind("inproc://full")  # nobody reads
        with pytest.raises(zmq.Again):
            for _ in range(1000):  # bounded: the high-water mark is reached long before
                wire.send(push, [b"a", b"b"])
    finally:
        ctx.destroy(linger=0)


class _FailingOnce(RecordingHandler):
    """Records announcements; raises on the one whose body is b"boom"."""

    def on_announce(self, envelope) -> None:
        if envelope.body == b"boom":
            raise RuntimeError("a handler bug")
        super().on_announce(envelope)


def test_a_burst_of_announcements_all_arrive_and_a_failing_one_loses_no_other(build) -> None:
    lifted = {"announce_rate": 10_000, "announce_burst": 10_000}  # the flood bound is not what is tested
    (a, record_a), (b, record_b) = build(own=lifted), build(own=lifted)
    handler = _FailingOnce()
    address = a.start(Gate(handler), record_a)
    b.start(Gate(RecordingHandler()), record_b)
    b.connect(address)
    wait_for(lambda: any(p.state == "up" for p in b.peers()), "the pair to meet")
    bodies = [f"n{i}".encode() for i in range(200)]
    bodies.insert(100, b"boom")
    sender = threading.Thread(target=lambda: [b.announce("note", body) for body in bodies])
    sender.start()
    sender.join(10)
    wait_for(lambda: len(handler.announces) == 200, "200 announcements")
    assert sorted(e.body for e in handler.announces) == sorted(x for x in bodies if x != b"boom")


def test_an_announcement_sent_unsigned_has_the_signed_ones_fields() -> None:
    env = seal(Identity.generate(), "note", b"x")
    signed = wire.parse([wire.header(wire.ANNOUNCE, 0, env), env.body], 1 << 20)[2]
    unsigned = wire.parse([wire.header(wire.ANNOUNCE, 0, env, signature=b""), env.body], 1 << 20)[2]
    assert signed.signature and not unsigned.signature
    assert (unsigned.kind, unsigned.sender, unsigned.sent_at, unsigned.nonce) == \
        (signed.kind, signed.sender, signed.sent_at, signed.nonce)
