"""An adversarial review of the kernel's gate (issue #12 item 1, issue #14): attacks a peer on loopback could try."""

from __future__ import annotations

import hashlib
import time

import attrs
import pytest
from gates import Recorder

from gaia_core import codec
from gaia_core.envelope import Refused, seal
from gaia_core.identity import Identity
from gaia_core.inbound import RECORD, Gate, authenticated_by
from gaia_core.model import Envelope, NodeRecord
from gaia_core.roles import Channel


def _key(seed: str) -> Channel:
    return Channel("curve", hashlib.blake2b(seed.encode(), digest_size=32).digest())


def _record_env(identity: Identity, key: bytes, *, updated_at: float | None = None) -> Envelope:
    record = NodeRecord(node_id=identity.node_id, transport={"curve": key},
                        updated_at=time.time() if updated_at is None else updated_at)
    return seal(identity, RECORD, codec.encode(record))


def test_a_record_relayed_first_on_another_channel_does_not_suppress_the_owners_own_copy() -> None:
    """A peer that races a node's signed record to us on its own connection must not use up the record's nonce:
    the owner's copy, arriving next on the owner's channel, still reaches the node."""
    rec = Recorder()
    gate = Gate(rec)
    victim = Identity.generate()
    env = _record_env(victim, _key("victim").key)
    gate.on_announce(env, _key("relay"))  # the relay's channel: refused as wrong_channel
    assert gate.stats() == {"wrong_channel": 1} and not rec.announces
    gate.on_announce(env, _key("victim"))  # the owner's own delivery
    assert rec.announces == [env] and authenticated_by(env) == "signature"
    gate.on_announce(env, _key("victim"))  # a true replay is still refused
    assert len(rec.announces) == 1 and gate.stats() == {"wrong_channel": 1, "replayed": 1}


def test_an_older_signed_record_delivered_late_does_not_roll_the_binding_back() -> None:
    """A node that changed its channel key (e.g. the old one leaked) stays bound to the new one, even when
    someone delivers its older record, never seen here, after the newer one."""
    gate = Gate(Recorder())
    node = Identity.generate()
    now = time.time()
    older = _record_env(node, _key("old").key, updated_at=now - 10)
    newer = _record_env(node, _key("new").key, updated_at=now)
    gate.on_announce(newer)
    gate.on_announce(older)
    assert gate.bound_key(node.node_id, "curve") == _key("new").key
    with pytest.raises(Refused) as info:
        gate.on_request(attrs.evolve(seal(node, "echo", b"x"), signature=b""), _key("old"))
    assert info.value.reason == "wrong_channel"


def test_a_stale_signed_record_binds_nothing() -> None:
    gate = Gate(Recorder())
    node = Identity.generate()
    record = NodeRecord(node_id=node.node_id, transport={"curve": _key("x").key})
    gate.on_announce(seal(node, RECORD, codec.encode(record), now=time.time() - 3600))
    assert gate.bound_key(node.node_id, "curve") is None and gate.stats() == {"stale": 1}


def test_the_bindings_are_bounded_in_bytes_not_only_in_count() -> None:
    """Identities cost nothing: records of 16 keys of 1 KiB each must not hold 100,000 × 16 KiB."""
    gate = Gate(Recorder(), max_binding_bytes=100_000)
    for _ in range(20):
        node = Identity.generate()
        keys = {f"k{i}": bytes([i]) * 1024 for i in range(16)}
        gate.on_announce(seal(node, RECORD, codec.encode(NodeRecord(node_id=node.node_id, transport=keys))))
    assert 0 < gate.binding_bytes() <= 100_000
    honest = Identity.generate()
    gate.on_announce(_record_env(honest, _key("honest").key))
    assert gate.bound_key(honest.node_id, "curve") == _key("honest").key


def test_the_mark_does_not_pass_to_an_equal_envelope() -> None:
    """Two envelopes equal by value: only the object the gate accepted carries its mark."""
    node = Identity.generate()
    gate = Gate(Recorder())
    gate.on_announce(_record_env(node, _key("n").key), _key("n"))
    env = attrs.evolve(seal(node, "echo", b"x"), signature=b"")
    twin = attrs.evolve(env)
    assert twin == env and twin is not env
    gate.on_request(env, _key("n"))
    assert authenticated_by(env) == "channel:curve" and authenticated_by(twin) is None


def _transport(tmp_path, name: str, *, security: str = "insecure", identity: Identity | None = None):
    """An unstarted ZmqTransport (insecure unless told) on a free loopback port, with fast liveness settings."""
    import logging

    from gaia_comm_zmq.transport import ZmqTransport
    from gaia_core.config import Config, Home
    from gaia_core.roles import NodeContext

    identity = identity or Identity.generate()
    home = Home(tmp_path / name)
    home.root.mkdir()
    config = Config()
    config = attrs.evolve(config, node=attrs.evolve(config.node, listen="tcp://127.0.0.1:*"),
                          network=attrs.evolve(config.network, heartbeat_s=0.2, down_after_s=1.5, security=security),
                          extra={"comm_zmq": {"retries": 0}})
    transport = ZmqTransport(NodeContext(config=config, home=home, identity=identity, log=logging.getLogger("t")))
    return transport, NodeRecord(node_id=identity.node_id), identity


def test_a_reply_for_one_peer_injected_on_another_peers_socket_is_refused(tmp_path) -> None:
    """A dialled peer that never answers hello must not answer, with a third node's signed reply (one it got
    from that node for a request of its own), a request this node sent to the third node."""
    import threading

    import zmq

    from gaia_comm_zmq import wire
    from gaia_core.testing.conformance.transport import RecordingHandler, wait_for

    (t, t_record, _), (q, q_record, q_identity) = _transport(tmp_path, "t"), _transport(tmp_path, "q")
    ctx = zmq.Context()
    try:
        t.start(Gate(RecordingHandler()), t_record)
        q_address = q.start(Gate(RecordingHandler()), q_record)
        t.connect(q_address)
        wait_for(lambda: any(p.state == "up" for p in t.peers()), "t to meet q")
        rogue = ctx.socket(zmq.ROUTER)  # the attacker: t dials it, it never answers the hello
        rogue.linger = 0
        port = rogue.bind_to_random_port("tcp://127.0.0.1")
        t.connect(f"tcp://127.0.0.1:{port}")
        assert rogue.poll(5000), "t never said hello"
        rid = rogue.recv_multipart()[0]
        answers: list[bytes | Exception] = []

        def ask() -> None:
            try:
                answers.append(t.request(q_record.node_id, "slow", b"1.0", timeout=5))
            except Exception as exc:  # noqa: BLE001 - recorded for the assertion below
                answers.append(exc)

        asker = threading.Thread(target=ask)
        asker.start()
        wait_for(lambda: bool(t._waiters), "t's request to q to be in flight")
        corr = next(iter(t._waiters))
        forged = seal(q_identity, wire.REPLY_KIND, b"what the rogue wants")  # q's signature, another request's reply
        rogue.send_multipart([rid, wire.header(wire.REPLY, corr, forged), forged.body])
        asker.join(10)
        assert answers == [b"1.0"]
    finally:
        ctx.destroy(linger=0)
        t.stop()
        q.stop()


def test_a_node_back_with_a_new_channel_key_is_not_locked_out_by_its_old_binding(tmp_path) -> None:
    """A node restarted with the same identity and a new Curve key (its transport key file lost) says hello on the
    new channel; the binding of the old key must not refuse that signed hello, or the node never gets back in."""
    from gaia_core.testing.conformance.transport import RecordingHandler, wait_for

    (t, t_record, _), (v, v_record, v_identity) = (_transport(tmp_path, "t", security="curve"),
                                                    _transport(tmp_path, "v", security="curve"))
    t_gate = Gate(RecordingHandler())
    t_address = t.start(t_gate, t_record)
    v.start(Gate(RecordingHandler()), v_record)
    v2 = None
    try:
        v.connect(t_address)
        wait_for(lambda: any(p.state == "up" for p in t.peers()), "t to meet v")
        v.announce(RECORD, codec.encode(v.record))
        wait_for(lambda: t_gate.bound_key(v_record.node_id, "curve") is not None, "t to bind v's key")
        v.stop()
        v2, v2_record, _ = _transport(tmp_path, "v2", security="curve", identity=v_identity)
        v2.start(Gate(RecordingHandler()), v2_record)
        assert v2.record.transport["curve"] != v.record.transport["curve"]
        v2.connect(t_address)
        wait_for(lambda: any(p.state == "up" for p in v2.peers()), "v, back with a new key, to meet t again")
        v2.announce(RECORD, codec.encode(v2.record))  # as the node does every heartbeat: signed, t does not bind it
        wait_for(lambda: t_gate.bound_key(v_record.node_id, "curve") == v2.record.transport["curve"],
                 "t to rebind v's new key")
    finally:
        t.stop()
        v.stop()
        if v2 is not None:
            v2.stop()


def test_a_hello_reply_for_one_dial_injected_on_another_dials_socket_is_refused(tmp_path) -> None:
    """A dialled peer must not answer the hello this node sent to another address with a third node's signed
    hello reply: that node's id would be mapped to the injector's socket."""
    import socket

    import msgpack
    import zmq

    from gaia_comm_zmq import wire
    from gaia_core.testing.conformance.transport import RecordingHandler, wait_for

    t, t_record, _ = _transport(tmp_path, "t")
    q = Identity.generate()  # a node at an address that does not answer (yet): t's hello to it stays in flight
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        silent = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    ctx = zmq.Context()
    try:
        t.start(Gate(RecordingHandler()), t_record)
        t.connect(silent)
        rogue = ctx.socket(zmq.ROUTER)
        rogue.linger = 0
        port = rogue.bind_to_random_port("tcp://127.0.0.1")
        t.connect(f"tcp://127.0.0.1:{port}")
        assert rogue.poll(5000), "t never said hello"
        rid = rogue.recv_multipart()[0]
        wait_for(lambda: any(sent[1].endpoint == silent for sent in list(t._internal.values())), "t's hello")
        corr = next(c for c, sent in list(t._internal.items()) if sent[1].endpoint == silent)
        body = msgpack.packb([codec.encode(NodeRecord(node_id=q.node_id)), []], use_bin_type=True)
        forged = seal(q, wire.REPLY_KIND, body)  # q's own signed hello reply, got by saying hello to q
        rogue.send_multipart([rid, wire.header(wire.REPLY, corr, forged), forged.body])
        wait_for(lambda: t.stats()["rejected"].get("wrong_sender"), "the injected reply to be refused", timeout=5)
        assert q.node_id not in {p.node_id for p in t.peers()}
    finally:
        ctx.destroy(linger=0)
        t.stop()
