"""The kernel's gate: every message a transport receives is authenticated here before any handler sees it.

A transport starts with a :class:`Gate` as its :class:`~gaia_core.roles.MessageHandler`, never with
the node. The gate accepts an envelope when

- its Ed25519 signature is the sender's, or, for an unsigned envelope, the transport vouches for
  a :class:`~gaia_core.roles.Channel` key that the sender's signed NodeRecord binds to its node id;
- a vouched channel key, when given, is the one the sender's record binds (a transport that vouches
  for a wrong identity is caught even on signed messages);
- its time is finite and within the freshness window, and it was not seen before (the gate's own
  :class:`~gaia_core.envelope.ReplayGuard`, in which each sender has a bounded share).

Bindings are learnt only from fresh ``node.record`` announcements whose *signature* the gate verified,
so a channel is never bound by a message that arrived on that channel alone; a record older than the
one that bound its node never rebinds it, and the bindings are bounded in count and bytes. Every refusal is
counted by reason (:meth:`Gate.stats`) and logged at info once per peer and reason.

Each envelope the gate accepts is remembered (weakly, in this process only) with how it was
authenticated; :func:`authenticated_by` tells later checks, e.g. admission, so they neither verify
a signature twice nor refuse an unsigned envelope that came on a bound channel. The mark is never
decoded from the wire, so a peer cannot set it.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

from gaia_core import codec
from gaia_core.envelope import Refused, ReplayGuard, open_envelope
from gaia_core.errors import GaiaError
from gaia_core.model import Envelope, NodeRecord
from gaia_core.roles import Channel, PeerInfo

log = logging.getLogger("gaia.inbound")

#: The announcement kind that carries a node's record (and so binds its channel keys).
RECORD = "node.record"
#: Largest record the gate decodes to learn a binding.
MAX_RECORD_BYTES = 64 << 10
#: Entries of the gate's replay cache that one sender may hold (of its 1,000,000): a peer that
#: floods fills its own share and is refused (``replay_share``); every other peer is still served.
PEER_REPLAY_SHARE = 62_500
#: How an accepted envelope was authenticated: its own signature, or the bound channel's scheme.
SIGNATURE = "signature"

#: Envelopes a gate accepted, by object identity while they live (hashing a body of megabytes would
#: cost milliseconds), with how: SIGNATURE or "channel:<scheme>". Single dict operations: atomic.
_accepted: dict[int, tuple[weakref.ref[Envelope], str]] = {}


def authenticated_by(envelope: Envelope) -> str | None:
    """How a gate of this process authenticated ``envelope`` (``"signature"``, ``"channel:curve"``), or None."""
    entry = _accepted.get(id(envelope))
    return entry[1] if entry is not None and entry[0]() is envelope else None


def _accept(envelope: Envelope, how: str) -> None:
    key = id(envelope)  # the callback runs as the envelope dies, before its id can be reused
    _accepted[key] = (weakref.ref(envelope, lambda _: _accepted.pop(key, None)), how)


class RefusalLog:
    """Counts refusals by reason, and per peer, logging the first of each (peer, reason) at info.

    Thread-safe and bounded: at most ``max_peers`` peers are remembered (the least recent is
    forgotten, and logged again if it comes back), so made-up peer ids cannot grow it.
    """

    def __init__(self, logger: logging.Logger, what: str, *, max_peers: int = 10_000) -> None:
        self._log = logger
        self._what = what
        self._max_peers = max_peers
        self._counts: collections.Counter[str] = collections.Counter()
        self._by_peer: collections.OrderedDict[str, collections.Counter[str]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, reason: str, peer: str, detail: str) -> None:
        """Count one refusal of ``reason`` from ``peer`` (a node id or address); log it if it is new."""
        with self._lock:
            self._counts[reason] += 1
            counts = self._by_peer.pop(peer, None) or collections.Counter()
            first = counts[reason] == 0
            counts[reason] += 1
            self._by_peer[peer] = counts
            if len(self._by_peer) > self._max_peers:
                self._by_peer.popitem(last=False)
        if first:
            self._log.info("%s refused a message from %s (%s): %s; further ones are only counted",
                           self._what, peer[:16] or "an unknown peer", reason, detail)

    def counts(self) -> dict[str, int]:
        """Refusals so far, by reason."""
        with self._lock:
            return dict(self._counts)

    def of(self, peer: str) -> dict[str, int]:
        """Refusals of ``peer``'s messages so far, by reason (empty when none, or forgotten)."""
        with self._lock:
            return dict(self._by_peer.get(peer, {}))


class Handlers(Protocol):
    """What the gate delivers authenticated messages to: the node."""

    def on_request(self, envelope: Envelope) -> bytes:
        """Answer an authenticated request."""

    def on_announce(self, envelope: Envelope) -> None:
        """Take an authenticated announcement."""

    def on_peer(self, peer: PeerInfo) -> None:
        """Learn that a peer changed state."""


class Gate:
    """Authenticates every inbound message, then calls the node's handlers; a transport's MessageHandler."""

    def __init__(self, handler: Handlers, *, guard: ReplayGuard | None = None, max_bindings: int = 100_000,
                 max_binding_bytes: int = 64 << 20, logger: logging.Logger | None = None) -> None:
        self._handler = handler
        self._guard = guard or ReplayGuard(max_per_sender=PEER_REPLAY_SHARE)
        self._max_bindings = max_bindings
        self._max_binding_bytes = max_binding_bytes
        # node id -> (the binding record's updated_at, its keys by scheme, their size in bytes)
        self._bindings: collections.OrderedDict[str, tuple[float, dict[str, bytes], int]] = collections.OrderedDict()
        self._binding_bytes = 0
        self._lock = threading.Lock()
        self.refusals = RefusalLog(logger or log, "the kernel")

    # ------------------------------------------------------------------ what transports call

    def authenticate(self, envelope: Envelope, channel: Channel | None = None) -> None:
        """Accept ``envelope`` or raise :class:`~gaia_core.envelope.Refused` (counted and logged once)."""
        self._counted(self._check, envelope, channel)

    def on_request(self, envelope: Envelope, channel: Channel | None = None) -> bytes:
        """Authenticate, then let the node answer; a refusal raises (the transport answers with it)."""
        self.authenticate(envelope, channel)
        return self._handler.on_request(envelope)

    def on_announce(self, envelope: Envelope, channel: Channel | None = None) -> None:
        """Authenticate, learn a record's channel keys, then let the node take it; refusals are dropped.

        A signed, fresh record is learnt before the channel is checked and may rebind its own node's
        keys (a node whose key changed is not locked out by the old binding), unless the gate holds a
        newer record of that node; the channel must match after. Only then is its nonce used up, so a
        copy relayed first on another channel does not make the owner's own copy a replay.
        """
        rebinds = envelope.kind == RECORD and bool(envelope.signature)
        try:
            self._counted(self._check_record if rebinds else self._check, envelope, channel)
        except Refused:
            return
        try:
            self._handler.on_announce(envelope)
        except GaiaError as exc:  # the peer's body is bad or too much: its problem, not a traceback here
            self.refusals.add(getattr(exc, "reason", "bad_announcement"), envelope.sender, str(exc))

    def on_peer(self, peer: PeerInfo) -> None:
        """Pass a peer's change of state to the node."""
        self._handler.on_peer(peer)

    # ------------------------------------------------------------------ for the node

    def stats(self) -> dict[str, int]:
        """Messages refused by the kernel, by reason."""
        return self.refusals.counts()

    def bound_key(self, node_id: str, scheme: str) -> bytes | None:
        """The channel key of ``scheme`` that ``node_id``'s verified record binds, if the gate has one."""
        with self._lock:
            binding = self._bindings.get(node_id)
            return None if binding is None else binding[1].get(scheme)

    def binding_bytes(self) -> int:
        """Bytes of channel keys the gate holds (bounded by ``max_binding_bytes``)."""
        with self._lock:
            return self._binding_bytes

    # ------------------------------------------------------------------ inside

    def _counted(self, check: Callable[[Envelope, Channel | None], object], envelope: Envelope,
                 channel: Channel | None) -> None:
        try:
            check(envelope, channel)
        except Refused as refused:
            self.refusals.add(refused.reason, envelope.sender, refused.message)
            raise

    def _check_channel(self, envelope: Envelope, channel: Channel | None) -> bytes | None:
        """The key the sender's record binds for ``channel``'s scheme; Refused when the channel's is another."""
        bound = None if channel is None else self.bound_key(envelope.sender, channel.scheme)
        if channel is not None and bound is not None and bound != channel.key:
            raise Refused("wrong_channel", f"{envelope.kind} from {envelope.sender[:12]} came on a {channel.scheme} "
                          "channel whose key is not the one its signed record names")
        return bound

    def _check_record(self, envelope: Envelope, channel: Channel | None) -> None:
        """Verify a signed record, learn its keys if it is fresh and new here, then check it as any message."""
        open_envelope(envelope)
        try:  # freshness, and learnt once per envelope, without using up the nonce the message check uses
            self._guard.check(envelope, time.time(), scope=RECORD)
            self._learn(envelope)
        except Refused as refused:
            if refused.reason != "replayed":
                raise
        self._check(envelope, channel, verified=True)

    def _check(self, envelope: Envelope, channel: Channel | None, *, verified: bool = False) -> None:
        bound = self._check_channel(envelope, channel)
        if envelope.signature:
            if not verified:
                open_envelope(envelope)
            how = SIGNATURE
        elif channel is None:
            raise Refused("unsigned", f"unsigned {envelope.kind} envelope from {envelope.sender[:12]} "
                          "on a channel that authenticates no peer")
        elif bound is None:
            raise Refused("unbound_channel", f"unsigned {envelope.kind} envelope from {envelope.sender[:12]}: "
                          f"no signed record of that node binds its {channel.scheme} key yet")
        else:
            how = f"channel:{channel.scheme}"
        self._guard.check(envelope, time.time())
        _accept(envelope, how)

    def _learn(self, envelope: Envelope) -> None:
        try:
            record = codec.decode(envelope.body, NodeRecord, max_bytes=MAX_RECORD_BYTES)
        except GaiaError:
            return  # the node's own decoding refuses and counts it
        if record.node_id != envelope.sender:
            return
        keys = record.channel_keys()
        size = 256 + sum(len(scheme) + len(key) + 64 for scheme, key in keys.items())  # with dict overheads
        with self._lock:
            held = self._bindings.get(record.node_id)
            if held is not None and record.updated_at < held[0]:
                return  # an older record delivered late: never roll a binding back to a key given up
            if held is not None:
                self._binding_bytes -= held[2]
            self._bindings[record.node_id] = (record.updated_at, keys, size)
            self._binding_bytes += size
            self._bindings.move_to_end(record.node_id)
            while len(self._bindings) > self._max_bindings or self._binding_bytes > self._max_binding_bytes:
                self._binding_bytes -= self._bindings.popitem(last=False)[1][2]
