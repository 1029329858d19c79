"""Dial one peer address as this transport would, once, and say why it cannot be reached (``gaia doctor``).

Each step that can fail is told apart: the address itself, the TCP connection (peer down, host
unreachable), the ZMTP handshake (CurveZMQ against plaintext, a wrong Curve key, a refusal by the peer's
ZAP handler, e.g. its allow-list), and the signed hello (refused with a reason, or ignored by the peer's
gate, most often for clock skew). A peer that answers gives its clock, compared with this machine's.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import msgpack
import zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from gaia_comm_zmq import wire
from gaia_comm_zmq.address import parse_address
from gaia_comm_zmq.keys import CurveKey
from gaia_comm_zmq.settings import Settings
from gaia_core.plugin_api import GaiaError, Identity, NodeRecord, codec, seal

#: The start of a ZMTP 3 greeting (signature, major version): enough for a peer to send its whole greeting,
#: too little for it to judge ours.
_GREETING_START = b"\xff" + bytes(8) + b"\x7f\x03"
_GREETING_SIZE = 64
_SYNC = "sync both machines' clocks (NTP, e.g. `timedatectl set-ntp true`)"


def _finding(outcome: str, detail: str, fix: str = "") -> dict[str, str]:
    return {"outcome": outcome, "detail": detail, "fix": fix}


def probe(address: str, *, settings: Settings, identity: Identity, curve: CurveKey | None, timeout: float = 3.0,
          window_s: float = 60.0, clock: Callable[[], float] = time.time) -> dict[str, str]:
    """Reach the peer at ``address`` step by step; ``{"outcome": ok|warn|fail, "detail": ..., "fix": ...}``.

    ``window_s`` is how far apart the kernel lets clocks be; ``clock`` stands in for this machine's in tests.
    """
    try:
        endpoint, key = parse_address(address, curve=settings.curve)
    except GaiaError as exc:
        return _finding("fail", exc.message, exc.hint or "")
    if settings.curve and curve is None:
        return _finding("fail", "this node has no Curve key to dial with", "start the node once (`gaia node`)")
    down = _tcp(endpoint, settings, timeout)
    if down is not None:
        return down
    ctx = zmq.Context()
    try:
        return _dial(ctx, endpoint, key, settings=settings, identity=identity, curve=curve, timeout=timeout,
                     window_s=window_s, clock=clock)
    finally:
        ctx.destroy(linger=0)


def _tcp(endpoint: str, settings: Settings, timeout: float) -> dict[str, str] | None:
    """A finding when nothing accepts a TCP connection at ``endpoint``, or the peer's ZMTP greeting names
    another security mechanism than this node's; None when the peer can be dialled."""
    parts = urlsplit(endpoint)
    if parts.scheme != "tcp":
        return None
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:
        port = None
    if port is None:
        return _finding("fail", f"{endpoint} has no valid port", "write the address as tcp://HOST:PORT#KEY")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            theirs = _mechanism(sock)
    except ConnectionRefusedError:
        return _finding("fail", f"peer down: nothing listens at {host}:{port} (connection refused)",
                        "start the peer's node (`gaia node --detach` there), or fix the port in the address")
    except socket.gaierror as exc:
        return _finding("fail", f"cannot resolve host {host!r}: {exc.strerror}", "fix the host name in the address")
    except OSError as exc:
        return _finding("fail", f"cannot connect to {host}:{port}: {exc.strerror or 'timed out'}",
                        "the host is down or a firewall drops the connection; check the route and the firewall")
    ours = b"CURVE" if settings.curve else b"NULL"
    if theirs is None:
        return _finding("fail", f"{host}:{port} accepts connections but does not speak ZMTP: not a GAIA node",
                        "check the port in the address")
    if theirs != ours:
        names = {b"CURVE": "CurveZMQ", b"NULL": "plaintext (insecure)"}
        return _finding("fail", f"security mismatch: this node speaks {names[ours]}, the peer at {endpoint} "
                        f"{names.get(theirs, theirs.decode('ascii', 'replace'))}",
                        "set the same [comm_zmq] security (curve or insecure) on both nodes")
    return None


def _mechanism(sock: socket.socket) -> bytes | None:
    """The security mechanism (``CURVE``, ``NULL``) the ZMTP 3 greeting of the peer on ``sock`` names, or None
    when it sends no such greeting."""
    sock.sendall(_GREETING_START)
    greeting = b""
    while len(greeting) < _GREETING_SIZE:
        chunk = sock.recv(_GREETING_SIZE - len(greeting))
        if not chunk:
            break
        greeting += chunk
    if len(greeting) < 32 or greeting[0] != 0xFF or greeting[9] != 0x7F or greeting[10] < 3:
        return None
    return greeting[12:32].rstrip(b"\0")


def _dial(ctx: zmq.Context, endpoint: str, key: bytes | None, *, settings: Settings, identity: Identity,
          curve: CurveKey | None, timeout: float, window_s: float, clock: Callable[[], float]) -> dict[str, str]:
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    if curve is not None and key is not None:
        sock.curve_serverkey = z85.encode(key)
        sock.curve_publickey = z85.encode(curve.public)
        sock.curve_secretkey = z85.encode(curve.secret)
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                      | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    sock.connect(endpoint)
    failed = _handshake(monitor, endpoint, settings, timeout)
    if failed is not None:
        return failed
    # Dated 1970: never newer than the record a peer already holds of this node, so the probe changes nothing there.
    record = NodeRecord(node_id=identity.node_id, transport={"curve": curve.public} if curve is not None else {},
                        updated_at=0.0)
    env = seal(identity, wire.HELLO, msgpack.packb([codec.encode(record), []], use_bin_type=True), now=clock())
    sent = clock()
    sock.send_multipart([wire.header(wire.REQUEST, 1, env), env.body])
    if not sock.poll(int(timeout * 1000)):
        return _finding("fail", f"the peer at {endpoint} took the connection but ignored this node's hello for "
                        f"{timeout:g}s: its gate refuses our messages, most often because the clocks differ by "
                        f"more than ±{window_s:.0f}s",
                        _SYNC + "; the peer's `gaia status --json` counts what it refused under refused.kernel")
    try:
        mtype, _, reply = wire.parse(sock.recv_multipart(), settings.max_message_bytes)
    except wire.Refused as exc:
        return _finding("fail", f"the peer at {endpoint} answered hello with an unreadable reply ({exc})",
                        "run the same GAIA version on both nodes")
    if mtype == wire.ERROR:
        reason = reply.body.decode("utf-8", "replace")[:200]
        fix = (f"ask the peer's operator to add this node's id {identity.node_id} to [comm_zmq] allowlist"
               if "allow-list" in reason else "see the peer's log for the refusal")
        return _finding("fail", f"the peer at {endpoint} refused this node: {reason}", fix)
    skew = reply.sent_at - (sent + clock()) / 2
    if abs(skew) > window_s / 2:
        return _finding("warn", f"peer {reply.sender[:12]} answers, but its clock differs from this machine's by "
                        f"{skew:+.1f}s (messages beyond ±{window_s:.0f}s are refused)", _SYNC)
    return _finding("ok", f"peer {reply.sender[:12]} answers (clock difference {skew:+.1f}s)")


def _handshake(monitor: zmq.Socket, endpoint: str, settings: Settings, timeout: float) -> dict[str, str] | None:
    """None once the ZMTP handshake succeeds; else a finding saying which side refused what."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not monitor.poll(int(left * 1000) + 1):
            break
        event = recv_monitor_message(monitor)
        kind, value = event["event"], event["value"]
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return None
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return _finding("fail", f"the peer at {endpoint} refused this node at the handshake (ZAP status "
                            f"{value}): this node is not on its allow-list, or its address holds too many "
                            "connections", "ask the peer's operator to add this node's id to [comm_zmq] allowlist, "
                            "or close other connections from this address")
        if kind in (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
            detail = (f"wrong key: the peer at {endpoint} does not hold the Curve key in the address"
                      if settings.curve else f"the ZMTP handshake with {endpoint} failed (event value {value:#x})")
            return _finding("fail", detail, "copy the peer's full address from its `gaia status` (tcp://HOST:PORT#KEY)")
    return _finding("fail", f"no ZMTP handshake with {endpoint} within {timeout:g}s: something that is not a GAIA "
                    "node listens there, or it is overloaded", "check the port in the address")
