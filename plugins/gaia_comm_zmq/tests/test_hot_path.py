"""The per-message path (issue #14): frames sent and read without pyzmq's multipart helpers, and the
announcements of one drain handed to the handler pool in one call, one failure not losing the rest."""

from __future__ import annotations

import threading
import time

import pytest
import zmq

from gaia_comm_zmq import wire
from gaia_core.errors import UsageError
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


def test_an_unsigned_header_parses_as_a_fresh_unsigned_envelope_of_its_sender() -> None:
    sender = Identity.generate().node_id
    before = time.time()
    first, second = (wire.parse([wire.unsigned_header(wire.ANNOUNCE, 0, "note", sender), b"x"], 1 << 20)
                     for _ in range(2))
    for mtype, corr, env in (first, second):
        assert (mtype, corr, env.kind, env.sender, env.body, env.signature) == (wire.ANNOUNCE, 0, "note", sender,
                                                                                 b"x", b"")
        assert before <= env.sent_at <= time.time() and len(env.nonce) == 16
    assert first[2].nonce != second[2].nonce  # a fresh nonce per message: the replay guard tells them apart


def test_a_message_of_a_bad_kind_or_body_is_refused_before_it_is_sent(build) -> None:
    a, record_a = build()
    a.start(Gate(RecordingHandler()), record_a)
    for kind, body in (("", b"x"), ("k" * 65, b"x"), ("note", bytearray(b"x"))):
        with pytest.raises(UsageError, match="kind of 1 to 64 characters and a bytes body"):
            a.announce(kind, body)  # type: ignore[arg-type]
