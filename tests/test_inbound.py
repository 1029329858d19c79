"""The kernel's gate: nothing reaches a handler unauthenticated; channels bind only through signed records."""

from __future__ import annotations

import logging
import time

import attrs
import pytest
from gates import Recorder as GateRecorder, curve_channel

from gaia_core import codec
from gaia_core.envelope import Refused, seal
from gaia_core.identity import Identity
from gaia_core.inbound import RECORD, Gate
from gaia_core.model import Envelope, NodeRecord
from gaia_core.roles import Channel


class Recorder(GateRecorder):
    """The node's side: records what the gate lets through, decoding records as the node does."""

    def on_announce(self, envelope: Envelope) -> None:
        if envelope.kind == RECORD:
            codec.decode(envelope.body, NodeRecord)  # as the node does: a bad record raises CodecError
        super().on_announce(envelope)


@pytest.fixture
def gate() -> tuple[Gate, Recorder]:
    recorder = Recorder()
    return Gate(recorder), recorder


def _record(identity: Identity) -> bytes:
    return codec.encode(NodeRecord(node_id=identity.node_id, transport={"curve": curve_channel(identity).key}))


def test_a_signed_request_reaches_the_handler(gate, identity: Identity) -> None:
    g, rec = gate
    assert g.on_request(seal(identity, "echo", b"x")) == b"ok"
    assert len(rec.requests) == 1 and g.stats() == {}


@pytest.mark.parametrize(("make", "reason"), [
    (lambda i: attrs.evolve(seal(i, "echo", b"x"), body=b"y"), "forged"),
    (lambda i: attrs.evolve(seal(i, "echo", b"x"), signature=b""), "unsigned"),
    (lambda i: seal(i, "echo", b"x", now=time.time() - 3600), "stale"),
])
def test_a_bad_request_never_reaches_the_handler(gate, identity: Identity, make, reason: str) -> None:
    g, rec = gate
    with pytest.raises(Refused) as info:
        g.on_request(make(identity))
    assert info.value.reason == reason and not rec.requests and g.stats() == {reason: 1}


def test_a_replayed_request_reaches_the_handler_once(gate, identity: Identity) -> None:
    g, rec = gate
    env = seal(identity, "echo", b"x")
    g.on_request(env)
    with pytest.raises(Refused, match="replayed"):
        g.on_request(env)
    assert len(rec.requests) == 1 and g.stats() == {"replayed": 1}


def test_a_bad_announcement_is_counted_and_dropped_without_raising(gate, identity: Identity) -> None:
    g, rec = gate
    g.on_announce(attrs.evolve(seal(identity, "note", b"x"), body=b"y"))
    g.on_announce(seal(identity, RECORD, b"not a record"))
    assert not rec.announces and g.stats() == {"forged": 1, "bad_announcement": 1}


def test_an_unsigned_message_on_a_channel_bound_by_a_signed_record_is_accepted(gate, identity: Identity) -> None:
    """What lets a later transport drop per-message signatures on authenticated channels."""
    g, rec = gate
    unsigned = attrs.evolve(seal(identity, "echo", b"x"), signature=b"")
    with pytest.raises(Refused) as info:
        g.on_request(unsigned, curve_channel(identity))
    assert info.value.reason == "unbound_channel"
    g.on_announce(seal(identity, RECORD, _record(identity)), curve_channel(identity))
    assert g.bound_key(identity.node_id, "curve") == curve_channel(identity).key
    accepted = attrs.evolve(seal(identity, "echo", b"y"), signature=b"")
    assert g.on_request(accepted, curve_channel(identity)) == b"ok"
    with pytest.raises(Refused, match="replayed"):  # replay protection holds without signatures too
        g.on_request(accepted, curve_channel(identity))
    with pytest.raises(Refused) as info:  # another connection's key never speaks for this node
        g.on_request(attrs.evolve(seal(identity, "echo", b"w"), signature=b""), curve_channel(Identity.generate()))
    assert info.value.reason == "wrong_channel"


def test_a_signed_message_vouched_on_a_wrong_channel_is_refused(gate, identity: Identity) -> None:
    g, rec = gate
    g.on_announce(seal(identity, RECORD, _record(identity)))
    with pytest.raises(Refused) as info:
        g.on_request(seal(identity, "echo", b"x"), curve_channel(Identity.generate()))
    assert info.value.reason == "wrong_channel" and not rec.requests


def test_a_record_binds_only_when_signed_and_its_own(gate, identity: Identity) -> None:
    g, _ = gate
    other = Identity.generate()
    g.on_announce(seal(identity, RECORD, _record(other)))  # a record of someone else
    assert g.bound_key(other.node_id, "curve") is None and g.bound_key(identity.node_id, "curve") is None
    g.on_announce(attrs.evolve(seal(identity, RECORD, _record(identity)), signature=b""), curve_channel(identity))
    assert g.bound_key(identity.node_id, "curve") is None  # unsigned: refused, binds nothing


def test_bindings_are_bounded(identity: Identity) -> None:
    g = Gate(Recorder(), max_bindings=3)
    nodes = [Identity.generate() for _ in range(5)]
    for node in nodes:
        g.on_announce(seal(node, RECORD, _record(node)))
    assert [g.bound_key(n.node_id, "curve") is not None for n in nodes] == [False, False, True, True, True]


def test_refusals_are_logged_once_per_peer_and_reason(gate, identity: Identity, caplog) -> None:
    g, _ = gate
    with caplog.at_level(logging.INFO, logger="gaia.inbound"):
        for _ in range(5):
            with pytest.raises(Refused):
                g.on_request(attrs.evolve(seal(identity, "echo", b"x"), body=b"y"))
        with pytest.raises(Refused):
            g.on_request(seal(identity, "echo", b"x", now=time.time() - 3600))
    lines = [r for r in caplog.records if r.name == "gaia.inbound"]
    assert len(lines) == 2 and all(r.levelno == logging.INFO and not r.exc_info for r in lines)
    assert g.stats() == {"forged": 5, "stale": 1}


def test_a_handler_error_on_an_announcement_is_not_swallowed_when_it_is_a_bug(identity: Identity) -> None:
    class Broken(Recorder):
        def on_announce(self, envelope: Envelope) -> None:
            raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        Gate(Broken()).on_announce(seal(identity, "note", b""))



def test_the_node_keeps_a_bounded_number_of_peer_records(tmp_path, monkeypatch) -> None:
    """300 identities announcing records used to be kept for good, whatever their number and size."""
    from inprocess import build_node, load_plugins, make_home

    from gaia_core import node as node_mod

    monkeypatch.setattr(node_mod, "MAX_PEER_RECORDS", 50)
    node = build_node(make_home(tmp_path, "n"), load_plugins())
    try:
        for _ in range(60):
            peer = Identity.generate()
            node.gate.on_announce(seal(peer, RECORD, _record(peer)))
        big = Identity.generate()
        huge = NodeRecord(node_id=big.node_id, transport={"curve": curve_channel(big).key}, name="x" * (1 << 20))
        node.gate.on_announce(seal(big, RECORD, codec.encode(huge)))
        assert len(node.peer_records) == 50 and len(node.first_seen) == 50
        # the ten past the bound, and the 1 MiB record (over MAX_RECORD_BYTES: refused at decode)
        assert node.gate.stats() == {"records_full": 10, "bad_announcement": 1}
        assert node.refused()["kernel"] == node.gate.stats()  # what `gaia status --json` shows under "refused"
        assert node.gate.refusals.of(big.node_id) == {"bad_announcement": 1}  # and `gaia peers --json` per peer
    finally:
        node.store.close()


@pytest.mark.parametrize("body", [b"\xc1", b"\x93\x01\x02", b"\x05", b"\x91\x05", b"\x81\x90\x01"])
def test_a_malformed_request_body_is_a_clear_refusal_not_a_crash(tmp_path, identity: Identity, body: bytes) -> None:
    """A peer's undecodable offer or results is a ValidationError the sender is told, never a traceback here."""
    from inprocess import build_node, load_plugins, make_home

    from gaia_core.errors import ValidationError
    from gaia_core.jobs.messages import OFFER, RESULTS

    node = build_node(make_home(tmp_path, "n"), load_plugins())
    try:
        for kind in (OFFER, RESULTS):
            with pytest.raises(ValidationError, match=f"malformed {kind} body"):
                node.gate.on_request(seal(identity, kind, body))
    finally:
        node.store.close()


def test_a_record_binds_the_keys_of_its_transport_extension(gate, identity: Identity) -> None:
    """The kernel knows no key kind: whatever scheme a transport puts in the signed record is what binds."""
    g, rec = gate
    record = NodeRecord(node_id=identity.node_id, transport={"quic-cert": b"\x01" * 48})
    g.on_announce(seal(identity, RECORD, codec.encode(record)))
    assert g.bound_key(identity.node_id, "quic-cert") == b"\x01" * 48 and g.bound_key(identity.node_id, "curve") is None
    assert g.on_request(attrs.evolve(seal(identity, "echo", b"x"), signature=b""), Channel("quic-cert", b"\x01" * 48))
    with pytest.raises(Refused, match="not the one its signed record names"):
        g.on_request(seal(identity, "echo", b"y"), Channel("quic-cert", b"\x02" * 48))


def test_a_node_whose_key_changed_rebinds_with_its_signed_record(gate, identity: Identity) -> None:
    g, rec = gate
    old, new = Identity.generate(), Identity.generate()  # two curve keys of the same node
    for curve in (old, new):
        record = NodeRecord(node_id=identity.node_id, transport={"curve": curve_channel(curve).key})
        g.on_announce(seal(identity, RECORD, codec.encode(record)), curve_channel(curve))  # arrives on the new key
        assert g.bound_key(identity.node_id, "curve") == curve_channel(curve).key
    assert g.on_request(seal(identity, "echo", b"x"), curve_channel(new)) == b"ok"
    with pytest.raises(Refused, match="not the one its signed record names"):
        g.on_request(seal(identity, "echo", b"y"), curve_channel(old))
    assert g.stats() == {"wrong_channel": 1}
