"""Authenticate the channel, sign the evidence: unsigned envelopes are accepted only on a channel bound to
the sender's signed record, admission takes the gate's word for it, and a node pair on CurveZMQ runs a
job without one Ed25519 signature on its offers and results."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import pytest
from gates import Recorder, curve_channel
from inprocess import build_node, load_plugins, make_home, running, wait_for
from nodes import echo_tasks

from gaia_core import admission, codec, envelope as envelope_mod
from gaia_core.envelope import Refused, seal
from gaia_core.errors import RejectedError
from gaia_core.identity import Identity
from gaia_core.inbound import RECORD, Gate, authenticated_by
from gaia_core.jobs.messages import OFFER, RESULTS
from gaia_core.model import Envelope, NodeRecord
from gaia_core.roles import Channel


def _bound_gate(*identities: Identity) -> tuple[Gate, Recorder]:
    """A gate that has learnt each identity's channel from its signed record."""
    recorder = Recorder()
    gate = Gate(recorder)
    for identity in identities:
        record = NodeRecord(node_id=identity.node_id, transport={"curve": curve_channel(identity).key})
        gate.on_announce(seal(identity, RECORD, codec.encode(record)))
        assert gate.bound_key(identity.node_id, "curve") == curve_channel(identity).key
    return gate, recorder


def test_an_unsigned_message_on_the_senders_bound_channel_is_accepted_and_marked() -> None:
    alice = Identity.generate()
    gate, recorder = _bound_gate(alice)
    env = seal(alice, "echo", b"x", sign=False)
    assert not env.signature
    assert gate.on_request(env, curve_channel(alice)) == b"ok"
    assert recorder.requests == [env] and authenticated_by(env) == "channel:curve" and gate.stats() == {}
    signed = seal(alice, "echo", b"y")
    gate.on_request(signed, curve_channel(alice))
    assert authenticated_by(signed) == "signature"


def test_a_forged_unsigned_message_from_a_key_not_bound_to_the_claimed_sender_is_refused() -> None:
    alice, mallory = Identity.generate(), Identity.generate()
    gate, recorder = _bound_gate(alice, mallory)
    forged = seal(alice, "echo", b"pay mallory", sign=False)  # claims alice, comes on mallory's bound channel
    with pytest.raises(Refused) as info:
        gate.on_request(forged, curve_channel(mallory))
    assert info.value.reason == "wrong_channel"
    stranger = Channel("curve", b"\x07" * 32)  # a channel no record binds, for a sender with no binding at all
    with pytest.raises(Refused) as info:
        gate.on_request(seal(Identity.generate(), "echo", b"x", sign=False), stranger)
    assert info.value.reason == "unbound_channel"
    assert not recorder.requests and authenticated_by(forged) is None
    assert gate.stats() == {"wrong_channel": 1, "unbound_channel": 1}


def test_an_unsigned_message_on_a_transport_that_authenticates_no_channel_is_refused() -> None:
    alice = Identity.generate()
    gate, recorder = _bound_gate(alice)  # bound, but an insecure (plaintext) transport vouches for no channel
    with pytest.raises(Refused) as info:
        gate.on_request(seal(alice, "echo", b"x", sign=False), None)
    assert info.value.reason == "unsigned" and not recorder.requests


def test_replayed_and_stale_unsigned_messages_are_refused() -> None:
    alice = Identity.generate()
    gate, recorder = _bound_gate(alice)
    env = seal(alice, "echo", b"once", sign=False)
    gate.on_request(env, curve_channel(alice))
    stale = seal(alice, "echo", b"old", sign=False, now=time.time() - 3600)
    bad_time = seal(alice, "echo", b"old", sign=False, now=time.time() + 3600)
    for message, reason in ((env, "replayed"), (stale, "stale"), (bad_time, "stale")):
        with pytest.raises(Refused) as info:
            gate.on_request(message, curve_channel(alice))
        assert info.value.reason == reason
    assert recorder.requests == [env] and gate.stats() == {"replayed": 1, "stale": 2}


def test_admission_takes_the_gates_word_and_verifies_no_signature_twice(tmp_path: Path, monkeypatch) -> None:
    node = build_node(make_home(tmp_path, "n"), load_plugins())
    submitter = Identity.generate()
    (task,) = echo_tasks([b"x"], submitter.node_id)
    gate, _ = _bound_gate(submitter)

    unsigned = seal(submitter, OFFER, b"", sign=False)  # never through a gate: not authenticated
    with pytest.raises(RejectedError) as info:
        admission.check(task, node.context, envelope=unsigned)
    assert info.value.reason == "bad_signature"

    verified: list[bytes] = []
    real = envelope_mod.verify_signature
    monkeypatch.setattr(envelope_mod, "verify_signature", lambda *a: verified.append(a[1]) or real(*a))
    on_channel = seal(submitter, OFFER, b"", sign=False)
    gate.authenticate(on_channel, curve_channel(submitter))
    admission.check(task, node.context, envelope=on_channel)  # unsigned, authenticated by the bound channel
    signed = seal(submitter, OFFER, b"")
    gate.authenticate(signed)
    admission.check(task, node.context, envelope=signed)
    assert len(verified) == 1, "the gate verified the signed offer; admission must not verify it again"

    (other,) = echo_tasks([b"x"], Identity.generate().node_id)  # the channel's node is not the task's submitter
    with pytest.raises(RejectedError, match="names submitter"):
        admission.check(other, node.context, envelope=on_channel)


def test_a_node_pair_on_curve_runs_a_job_without_signing_offers_or_results(tmp_path: Path, monkeypatch) -> None:
    signed: collections.Counter[str] = collections.Counter()  # envelopes signed or verified, by kind
    lock = threading.Lock()
    real = envelope_mod.signed_bytes

    def counting(env: Envelope) -> bytes:
        with lock:
            signed[env.kind] += 1
        return real(env)

    worker = build_node(make_home(tmp_path, "worker"), load_plugins())
    with running(worker, drain_s=5.0):
        submitter = build_node(make_home(tmp_path, "submitter", {"network": {"bootstrap": [worker.address]}}),
                               load_plugins())
        with running(submitter, drain_s=5.0):
            wait_for(lambda: worker.transport.channel_bound(submitter.node_id)
                     and submitter.transport.channel_bound(worker.node_id),
                     timeout=30, what="each node's kernel to bind the other's Curve key from its signed record")
            monkeypatch.setattr(envelope_mod, "signed_bytes", counting)
            tasks = echo_tasks([f"unsigned {i}".encode() for i in range(12)], submitter.node_id)
            job = submitter.jobs.submit(tasks, to=worker.node_id)
            wait_for(lambda: submitter.jobs.job_status(job)["status"] == "finished", timeout=60, what="the job")
            done = {state: n for state, n in submitter.jobs.job_status(job)["tasks"].items() if n}
            monkeypatch.setattr(envelope_mod, "signed_bytes", real)
    assert done == {"done": 12}, done
    assert signed[OFFER] == 0 and signed[RESULTS] == 0, f"per-message signatures on the job's messages: {signed}"
    assert signed["gaia.net.reply"] == 0, f"replies on a bound channel were signed: {signed}"
    assert worker.gate.stats() == {} and submitter.gate.stats() == {}
