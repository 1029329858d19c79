"""Authenticate the channel: over real CurveZMQ sockets, messages to a peer whose kernel binds this node's
Curve key go unsigned; before that, in insecure mode, and for forgers, signatures (or refusals) stay."""

from __future__ import annotations

import time

import attrs

from gaia_comm_zmq import wire
from gaia_core import codec
from gaia_core.envelope import seal
from gaia_core.inbound import RECORD, Gate, authenticated_by
from gaia_core.model import NodeRecord
from gaia_core.testing.conformance.transport import RecordingHandler, wait_for


def _pair(build, **network):
    """Two started transports, b dialled to a, each with the kernel's gate; (transport, handler, gate) each."""
    nodes, addresses = [], []
    for _ in range(2):
        transport, record = build(**network)
        handler = RecordingHandler()
        gate = Gate(handler)
        addresses.append(transport.start(gate, record))
        nodes.append((transport, handler, gate))
    (a, _, _), (b, _, _) = nodes
    b.connect(addresses[0])
    wait_for(lambda: len(a.peers()) == 1 and len(b.peers()) == 1
             and all(p.state == "up" for p in a.peers() + b.peers()), "the pair to meet")
    return nodes


def _announce_records(nodes) -> None:
    """Each node announces its signed record, as the node does every heartbeat."""
    for transport, _, _ in nodes:
        transport.announce(RECORD, codec.encode(transport.record))


def test_requests_and_replies_go_unsigned_once_the_peer_binds_the_channel(build) -> None:
    (a, a_handler, a_gate), (b, b_handler, b_gate) = nodes = _pair(build)
    assert b.request(a.record.node_id, "echo", b"before", timeout=5) == b"before"
    first = next(e for e in a_handler.requests if e.body == b"before")
    assert first.signature, "no binding yet: the request must be signed"
    a.announce("note", b"before")
    wait_for(lambda: any(e.body == b"before" for e in b_handler.announces), "the first announcement")
    assert next(e for e in b_handler.announces if e.body == b"before").signature

    _announce_records(nodes)
    wait_for(lambda: b.channel_bound(a.record.node_id) and a.channel_bound(b.record.node_id),
             "each peer's ping replies to say it binds the other's key")
    assert b.request(a.record.node_id, "echo", b"after", timeout=5) == b"after"
    assert a.request(b.record.node_id, "echo", b"back", timeout=5) == b"back"
    after = next(e for e in a_handler.requests if e.body == b"after")
    back = next(e for e in b_handler.requests if e.body == b"back")
    assert not after.signature and not back.signature
    assert authenticated_by(after) == "channel:curve" and authenticated_by(back) == "channel:curve"
    assert a_gate.stats() == {} and b_gate.stats() == {}, "an unsigned reply or ping was refused"

    a.announce("note", b"to bound peers")
    wait_for(lambda: any(e.body == b"to bound peers" for e in b_handler.announces), "the announcement")
    note = next(e for e in b_handler.announces if e.body == b"to bound peers")
    assert not note.signature and authenticated_by(note) == "channel:curve"


def test_insecure_mode_keeps_every_signature(build) -> None:
    (a, a_handler, a_gate), (b, _, _) = nodes = _pair(build, security="insecure")
    _announce_records(nodes)
    time.sleep(1.0)  # five heartbeats of 0.2 s: ping replies had every chance to (wrongly) vouch
    assert not b.channel_bound(a.record.node_id) and not a.channel_bound(b.record.node_id)
    assert b.request(a.record.node_id, "echo", b"plain", timeout=5) == b"plain"
    assert next(e for e in a_handler.requests if e.body == b"plain").signature
    assert a_gate.stats() == {}


def test_unsigned_requests_from_forged_unbound_or_replaying_peers_are_refused(build, dial_raw) -> None:
    (a, a_handler, a_gate), (b, _, _) = nodes = _pair(build)
    _announce_records(nodes)
    wait_for(lambda: a_gate.bound_key(b.record.node_id, "curve") is not None, "a to bind b's key")
    address = f"{a.record.addresses[0]}#{a.record.transport['curve'].hex()}"

    # b's node id, claimed unsigned over a connection with another Curve key
    forger = dial_raw(address)
    env = attrs.evolve(seal(forger.identity, "echo", b"forged", sign=False), sender=b.record.node_id)
    forger.sock.send_multipart([wire.header(wire.REQUEST, 7, env), env.body])
    # an unbound node, unsigned
    stranger = dial_raw(address)
    stranger.send_request("echo", b"stranger", sign=False)
    wait_for(lambda: a_gate.stats().get("wrong_channel", 0) >= 1 and a_gate.stats().get("unbound_channel", 0) >= 1,
             "the forged and the unbound unsigned requests to be refused")

    # a raw peer that binds its own key with a signed record: unsigned is accepted once, never replayed or stale
    honest = dial_raw(address)
    record = NodeRecord(node_id=honest.identity.node_id, transport={"curve": honest.curve.public})
    announce = seal(honest.identity, RECORD, codec.encode(record))
    honest.sock.send_multipart([wire.header(wire.ANNOUNCE, 0, announce), announce.body])
    wait_for(lambda: a_gate.bound_key(honest.identity.node_id, "curve") == honest.curve.public,
             "the raw peer's signed record to bind its key")
    head = honest.send_request("echo", b"once", sign=False)
    wait_for(lambda: any(e.body == b"once" for e in a_handler.requests), "the bound unsigned request")
    honest.sock.send_multipart([head, b"once"])
    honest.send_request("echo", b"old", sign=False, now=time.time() - 3600)
    wait_for(lambda: a_gate.stats().get("replayed", 0) >= 1 and a_gate.stats().get("stale", 0) >= 1,
             "the replayed and the stale unsigned requests to be refused")
    bodies = [e.body for e in a_handler.requests]
    assert bodies.count(b"once") == 1 and b"forged" not in bodies and b"stranger" not in bodies and b"old" not in bodies
