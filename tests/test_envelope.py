"""Signed envelopes: seal/open, and forged, unsigned, stale and replayed envelopes refused."""

from __future__ import annotations

import attrs
import pytest

from gaia_core.codec import decode, encode
from gaia_core.envelope import DEFAULT_WINDOW_S, Refused, ReplayGuard, open_envelope, seal, signed_bytes
from gaia_core.errors import SignatureError
from gaia_core.identity import Identity
from gaia_core.model import Envelope

NOW = 1_700_000_000.0


def test_seal_then_open_returns_the_envelope(identity: Identity) -> None:
    env = seal(identity, "ping", b"hello", now=NOW)
    assert (env.kind, env.sender, env.sent_at, env.body) == ("ping", identity.node_id, NOW, b"hello")
    assert len(env.nonce) == 16 and len(env.signature) == 64
    assert open_envelope(env, ReplayGuard(), now=NOW) is env


def test_an_envelope_survives_the_wire(identity: Identity) -> None:
    env = seal(identity, "task", b"\x00" * 1000, now=NOW)
    assert open_envelope(decode(encode(env), Envelope), now=NOW) == env


def test_every_seal_has_a_fresh_nonce(identity: Identity) -> None:
    assert seal(identity, "ping", b"", now=NOW).nonce != seal(identity, "ping", b"", now=NOW).nonce


@pytest.mark.parametrize(
    "change",
    [
        {"body": b"hellO"},
        {"kind": "pong"},
        {"sent_at": NOW + 1},
        {"nonce": b"\x01" * 16},
    ],
    ids=["body", "kind", "timestamp", "nonce"],
)
def test_a_forged_field_is_refused(identity: Identity, change: dict[str, object]) -> None:
    forged = attrs.evolve(seal(identity, "ping", b"hello", now=NOW), **change)
    with pytest.raises(SignatureError, match="forged"):
        open_envelope(forged, now=NOW)


def test_a_forged_sender_is_refused(identity: Identity) -> None:
    other = Identity.generate()
    forged = attrs.evolve(seal(identity, "ping", b"hello", now=NOW), sender=other.node_id)
    with pytest.raises(SignatureError, match=f"does not match sender {other.node_id[:12]}"):
        open_envelope(forged, now=NOW)


def test_a_signature_from_another_key_is_refused(identity: Identity) -> None:
    env = seal(identity, "ping", b"hello", now=NOW)
    forged = attrs.evolve(env, signature=Identity.generate().sign(signed_bytes(env)))
    with pytest.raises(SignatureError, match="forged"):
        open_envelope(forged, now=NOW)


def test_an_unsigned_envelope_is_refused(identity: Identity) -> None:
    unsigned = attrs.evolve(seal(identity, "ping", b"hello", now=NOW), signature=b"")
    with pytest.raises(SignatureError, match="unsigned ping envelope") as info:
        open_envelope(unsigned, now=NOW)
    assert info.value.exit_code == 6


@pytest.mark.parametrize("skew", [DEFAULT_WINDOW_S + 1, -(DEFAULT_WINDOW_S + 1), 3600.0])
def test_a_stale_envelope_is_refused(identity: Identity, skew: float) -> None:
    env = seal(identity, "ping", b"", now=NOW)
    with pytest.raises(SignatureError, match="stale ping envelope") as info:
        open_envelope(env, ReplayGuard(), now=NOW + skew)
    assert "clocks" in str(info.value)


def test_an_envelope_inside_the_window_is_accepted(identity: Identity) -> None:
    guard = ReplayGuard(window_s=10)
    open_envelope(seal(identity, "ping", b"", now=NOW), guard, now=NOW + 9.5)
    open_envelope(seal(identity, "ping", b"", now=NOW), guard, now=NOW - 9.5)


def test_a_replayed_envelope_is_refused(identity: Identity) -> None:
    guard = ReplayGuard()
    env = seal(identity, "ping", b"hello", now=NOW)
    open_envelope(env, guard, now=NOW)
    with pytest.raises(SignatureError, match="replayed ping envelope"):
        open_envelope(env, guard, now=NOW + 1)
    open_envelope(seal(identity, "ping", b"hello", now=NOW), guard, now=NOW + 1)


def test_the_same_nonce_from_another_sender_is_not_a_replay(identity: Identity) -> None:
    guard = ReplayGuard()
    env = seal(identity, "ping", b"", now=NOW)
    other = Identity.generate()
    twin = attrs.evolve(env, sender=other.node_id, signature=b"")
    twin = attrs.evolve(twin, signature=other.sign(signed_bytes(twin)))
    open_envelope(env, guard, now=NOW)
    open_envelope(twin, guard, now=NOW)


def test_the_replay_cache_forgets_entries_older_than_the_window(identity: Identity) -> None:
    guard = ReplayGuard(window_s=10)
    for i in range(50):
        open_envelope(seal(identity, "ping", b"", now=NOW + i), guard, now=NOW + i)
    # Entries are purged once they are two windows old, so memory stays bounded by the rate.
    assert len(guard._seen) <= 2 * 10 + 10 // 4 + 2


def test_the_replay_cache_is_bounded(identity: Identity) -> None:
    guard = ReplayGuard(window_s=60, max_entries=8)
    for _ in range(8):
        open_envelope(seal(identity, "ping", b"", now=NOW), guard, now=NOW)
    with pytest.raises(SignatureError, match="replay cache is full"):
        open_envelope(seal(identity, "ping", b"", now=NOW), guard, now=NOW)
    assert len(guard._seen) == 8
    # Once the old entries fall out of the window there is room again.
    open_envelope(seal(identity, "ping", b"", now=NOW + 121), guard, now=NOW + 121)
    assert len(guard._seen) == 1


@pytest.mark.parametrize("sent_at", [float("nan"), float("inf"), float("-inf")])
def test_a_time_that_is_not_finite_is_refused_and_never_remembered(identity: Identity, sent_at: float) -> None:
    guard = ReplayGuard()
    with attrs.validators.disabled():  # the model refuses such a time at decode; the guard must not rely on it
        env = attrs.evolve(seal(identity, "ping", b"", now=NOW), sent_at=sent_at)
        env = attrs.evolve(env, signature=identity.sign(signed_bytes(env)))  # a validly signed NaN time
    for later in (NOW, NOW + 1000):  # NaN compares false with the window, so it used to pass, again and again
        with pytest.raises(Refused, match="no valid time") as info:
            open_envelope(env, guard, now=later)
        assert info.value.reason == "bad_time"
    assert not guard._seen


@pytest.mark.parametrize(("change", "reason"), [
    ({"signature": b""}, "unsigned"), ({"body": b"x"}, "forged"), ({"sent_at": NOW - 3600}, "stale")])
def test_each_refusal_names_its_reason(identity: Identity, change: dict[str, object], reason: str) -> None:
    env = attrs.evolve(seal(identity, "ping", b"", now=NOW), **change)
    if reason == "stale":
        env = attrs.evolve(env, signature=identity.sign(signed_bytes(env)))
    with pytest.raises(Refused) as info:
        open_envelope(env, ReplayGuard(), now=NOW)
    assert info.value.reason == reason and isinstance(info.value, SignatureError)
