"""Dial addresses: a ZeroMQ endpoint plus, under CurveZMQ, the peer's public Curve25519 key.

A dial address is ``tcp://host:port#<64 hex digits of the curve key>``; the
key is what a CurveZMQ client must know before it connects. Without CURVE
(``--insecure``) the ``#key`` part is absent.
"""

from __future__ import annotations

import re

from gaia_core.plugin_api import UsageError

_ENDPOINT = re.compile(r"(tcp|ipc)://[^#\s]+\Z")
_KEY = re.compile(r"[0-9a-f]{64}\Z")


def format_address(endpoint: str, curve_key: bytes | None) -> str:
    """The dial address of ``endpoint`` served with ``curve_key`` (None without CURVE)."""
    return endpoint if curve_key is None else f"{endpoint}#{curve_key.hex()}"


def parse_address(address: str, *, curve: bool) -> tuple[str, bytes | None]:
    """Split a dial address into its endpoint and curve key, with an actionable error."""
    endpoint, _, key = address.strip().partition("#")
    if not _ENDPOINT.match(endpoint):
        raise UsageError(f"peer address {address!r} is not a ZeroMQ endpoint such as tcp://10.0.0.5:7700")
    if not curve:
        return endpoint, None
    if not _KEY.match(key):
        raise UsageError(
            f"peer address {address!r} lacks the peer's curve key",
            hint="use the full address the peer prints at start or in `gaia peers`: tcp://HOST:PORT#<64 hex>",
        )
    return endpoint, bytes.fromhex(key)
