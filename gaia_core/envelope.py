"""Signed envelopes: every message between nodes is sealed here and opened here.

A sealed :class:`~gaia_core.model.Envelope` carries the sender's node id, a
timestamp and a random nonce, Ed25519-signed together with the body. Opening
rejects a forged, stale or replayed envelope with a :class:`Refused` (a
:class:`~gaia_core.errors.SignatureError` that names its reason).

On a channel that authenticates the peer (see :mod:`gaia_core.inbound`) a transport may seal
with ``sign=False``: the envelope keeps its sender, time and nonce (so staleness and replay are
still checked) but carries no signature of its own.
"""

from __future__ import annotations

import collections
import math
import os
import threading
import time
from typing import Protocol

from gaia_core.codec import canonical_bytes
from gaia_core.errors import SignatureError
from gaia_core.identity import Identity, verify_signature
from gaia_core.model import Envelope

_DOMAIN = b"gaia-envelope-v1\x00"
#: How far a timestamp may be from this node's clock, either way.
DEFAULT_WINDOW_S = 60.0
#: Every reason an envelope can be refused for here.
REASONS = ("unsigned", "forged", "bad_time", "stale", "replayed", "replay_full", "replay_share")


class Refused(SignatureError):
    """An envelope was refused; ``reason`` is one of :data:`REASONS` (or a caller's own, e.g. the gate's)."""

    def __init__(self, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


def signed_bytes(env: Envelope) -> bytes:
    """The exact bytes an envelope's signature covers."""
    return _DOMAIN + canonical_bytes([env.kind, env.sender, env.sent_at, env.nonce, env.body])


def seal(identity: Identity, kind: str, body: bytes, *, now: float | None = None, sign: bool = True) -> Envelope:
    """Wrap ``body`` in an envelope from ``identity``, signed unless ``sign`` is off.

    Leave ``sign`` on unless the receiver authenticates the channel the envelope travels on and
    binds it to this node's signed record: an unsigned envelope is refused everywhere else.
    """
    env = Envelope(kind=kind, sender=identity.node_id, sent_at=time.time() if now is None else now,
                   nonce=os.urandom(16), body=body)
    if not sign:
        return env
    return Envelope(env.kind, env.sender, env.sent_at, env.nonce, env.body, identity.sign(signed_bytes(env)))


class Stamped(Protocol):
    """What the replay guard reads of a message: an envelope, or a batch of evidence (gaia_core.evidence)."""

    @property
    def kind(self) -> str: ...
    @property
    def sender(self) -> str: ...
    @property
    def sent_at(self) -> float: ...
    @property
    def nonce(self) -> bytes: ...


def check_time(env: Stamped, now: float, window_s: float = DEFAULT_WINDOW_S) -> None:
    """Raise :class:`Refused` unless ``env``'s time is finite and within ``window_s`` of ``now``."""
    if not math.isfinite(env.sent_at):  # NaN compares false with everything: it would pass the window
        raise Refused("bad_time", f"{env.kind} envelope from {env.sender[:12]} has no valid time "
                      f"({env.sent_at!r})", hint="the sender must stamp seconds since the epoch")
    skew = now - env.sent_at
    if abs(skew) > window_s:
        raise Refused(
            "stale", f"stale {env.kind} envelope from {env.sender[:12]}: sent {skew:+.0f}s from now "
            f"(window ±{window_s:.0f}s)",
            hint="check both machines' clocks (NTP)",
        )


class ReplayGuard:
    """Remembers (sender, nonce, scope) for the freshness window; thread-safe and bounded.

    ``max_per_sender`` bounds one sender's share of the ``max_entries``: past it, only that
    sender's messages are refused (``replay_share``), so one peer cannot fill the cache for all.
    """

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, max_entries: int = 1_000_000,
                 max_per_sender: int | None = None) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self.max_per_sender = max_entries if max_per_sender is None else max_per_sender
        self._seen: dict[tuple[str, bytes, str], float] = {}
        self._per_sender: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def check(self, env: Stamped, now: float, *, scope: str = "") -> None:
        """Record ``env`` or raise :class:`Refused` if its time is not finite, it is stale or was seen before.

        ``scope`` names a part of the envelope checked on its own, e.g. one task of an envelope
        that carries a batch: each (envelope, scope) pair is accepted once.
        """
        check_time(env, now, self.window_s)
        key = (env.sender, env.nonce, scope)
        with self._lock:
            if now >= self._next_purge:  # on a schedule only: a full cache must not cost a rebuild per call
                cutoff = now - 2 * self.window_s
                self._seen = {k: t for k, t in self._seen.items() if t > cutoff}
                self._per_sender = collections.Counter(k[0] for k in self._seen)
                self._next_purge = now + self.window_s / 4
            if key in self._seen:
                raise Refused("replayed", f"replayed {env.kind} envelope from {env.sender[:12]}")
            if len(self._seen) >= self.max_entries:
                raise Refused("replay_full", "replay cache is full; envelope refused",
                              hint="the node is under load; retry later")
            if self._per_sender[env.sender] >= self.max_per_sender:
                raise Refused("replay_share", f"{env.sender[:12]} sent more than {self.max_per_sender} messages "
                              f"within {2 * self.window_s:.0f}s; its {env.kind} envelope is refused",
                              hint="the sender must slow down; other peers are not affected")
            self._seen[key] = env.sent_at
            self._per_sender[env.sender] += 1


def open_envelope(env: Envelope, guard: ReplayGuard | None = None, *, now: float | None = None) -> Envelope:
    """Verify ``env``'s signature, freshness and novelty; return it unchanged when all hold."""
    if not env.signature:
        raise Refused("unsigned", f"unsigned {env.kind} envelope from {env.sender[:12]}")
    if not verify_signature(env.sender, env.signature, signed_bytes(env)):
        raise Refused("forged", f"forged {env.kind} envelope: signature does not match sender {env.sender[:12]}")
    if guard is not None:
        guard.check(env, time.time() if now is None else now)
    return env
