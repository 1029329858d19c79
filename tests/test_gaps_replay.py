"""One peer that floods the gate's replay cache is refused alone: every other peer is still served."""

from __future__ import annotations

import pytest
from gates import Recorder, curve_channel

from gaia_core import codec
from gaia_core.envelope import Refused, ReplayGuard, seal
from gaia_core.identity import Identity
from gaia_core.inbound import PEER_REPLAY_SHARE, RECORD, Gate
from gaia_core.model import NodeRecord
from gaia_core.roles import Channel

NOW = 1_700_000_000.0


def _bind(gate: Gate, identity: Identity) -> Channel:
    """Announce ``identity``'s signed record so its channel is bound; return that channel."""
    channel = curve_channel(identity)
    record = NodeRecord(node_id=identity.node_id, transport={"curve": channel.key})
    gate.on_announce(seal(identity, RECORD, codec.encode(record)), channel)
    return channel


def test_a_peer_filling_the_default_gates_replay_cache_refuses_only_itself() -> None:
    flooder, honest = Identity.generate(), Identity.generate()
    recorder = Recorder()
    gate = Gate(recorder)
    flood_channel, honest_channel = _bind(gate, flooder), _bind(gate, honest)
    refused = None
    for _ in range(PEER_REPLAY_SHARE + 10):  # bounded: the share, then a few more
        try:
            gate.on_request(seal(flooder, "echo", b"", sign=False), flood_channel)
        except Refused as exc:
            refused = exc
            break
    assert refused is not None and refused.reason == "replay_share"
    assert len(recorder.requests) < PEER_REPLAY_SHARE
    # The honest peer is still served, and only the flooder's refusals are counted against it.
    assert gate.on_request(seal(honest, "echo", b"", sign=False), honest_channel) == b"ok"
    assert gate.refusals.of(honest.node_id) == {}
    assert gate.refusals.of(flooder.node_id) == {"replay_share": 1}


def test_a_senders_share_frees_as_its_entries_leave_the_window(identity: Identity) -> None:
    other = Identity.generate()
    guard = ReplayGuard(window_s=10, max_entries=100, max_per_sender=3)
    for _ in range(3):
        guard.check(seal(identity, "ping", b"", now=NOW), NOW)
    with pytest.raises(Refused, match="sent more than 3 messages") as info:
        guard.check(seal(identity, "ping", b"", now=NOW), NOW)
    assert info.value.reason == "replay_share"
    guard.check(seal(other, "ping", b"", now=NOW), NOW)  # another sender: its own share
    later = NOW + 21  # two windows on: the flooder's entries are purged, and so is its count
    guard.check(seal(identity, "ping", b"", now=later), later)


def test_without_a_share_one_sender_may_use_the_whole_cache(identity: Identity) -> None:
    guard = ReplayGuard(window_s=10, max_entries=4)
    for _ in range(4):
        guard.check(seal(identity, "ping", b"", now=NOW), NOW)
    with pytest.raises(Refused) as info:
        guard.check(seal(identity, "ping", b"", now=NOW), NOW)
    assert info.value.reason == "replay_full"
