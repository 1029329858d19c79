"""Helpers for the tests of the kernel's gate: the node's side it hands messages to, and made-up Curve channels."""

from __future__ import annotations

import hashlib

from gaia_core.identity import Identity
from gaia_core.model import Envelope
from gaia_core.roles import Channel, PeerInfo


class Recorder:
    """The node's side of a gate: keeps what it lets through."""

    def __init__(self) -> None:
        self.requests: list[Envelope] = []
        self.announces: list[Envelope] = []

    def on_request(self, envelope: Envelope) -> bytes:
        self.requests.append(envelope)
        return b"ok"

    def on_announce(self, envelope: Envelope) -> None:
        self.announces.append(envelope)

    def on_peer(self, peer: PeerInfo) -> None:
        pass


def curve_channel(identity: Identity) -> Channel:
    """A made-up Curve key of ``identity``'s node, one per node id."""
    return Channel("curve", hashlib.blake2b(identity.node_id.encode(), digest_size=32).digest())
