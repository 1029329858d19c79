"""The node's local control socket: how ``gaia status``, ``submit`` and friends talk to a running node.

A Unix socket in the node's home (only this user can reach it). Each call is
one msgpack frame ``{"method", "params"}`` prefixed by its length, answered by
``{"ok", "result"}`` or ``{"ok": false, "error", "exit_code"}``.
"""

from __future__ import annotations

import hashlib
import socket
import socketserver
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import msgpack

from gaia_core.config import Home
from gaia_core.errors import GaiaError, NodeError

_HEADER = struct.Struct("!I")
MAX_FRAME = 256 << 20


def socket_path(home: Home) -> Path:
    """Where the node's control socket lives (a short temp path when the home's is too long for AF_UNIX)."""
    path = home.root / "control.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.blake2b(str(home.root).encode(), digest_size=8).hexdigest()
    return Path(tempfile.gettempdir()) / f"gaia-{digest}.sock"


def _send(sock: socket.socket, data: Any) -> None:
    payload = msgpack.packb(data, use_bin_type=True)
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv(sock: socket.socket) -> Any:
    header = _recv_exact(sock, _HEADER.size)
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise NodeError(f"control frame of {size} bytes is too large")
    return msgpack.unpackb(_recv_exact(sock, size), raw=False)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("control connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class ControlServer:
    """Serves ``methods`` on the control socket from a background thread."""

    def __init__(self, home: Home, methods: dict[str, Callable[..., Any]]) -> None:
        self.path = socket_path(home)
        self.methods = methods
        if self.path.exists():
            try:
                ControlClient(home, timeout=2.0).close()
            except NodeError:
                self.path.unlink()  # left behind by a node that died
            else:
                raise NodeError(f"a node is already running for home {home.root}",
                                hint="stop it with `gaia stop`, or give this one another --home")
        methods_ = methods

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    while True:
                        request = _recv(self.request)
                        _send(self.request, _dispatch(methods_, request))
                except (ConnectionError, OSError):
                    return

        self._server = socketserver.ThreadingUnixStreamServer(str(self.path), Handler)
        self._server.daemon_threads = True
        self.path.chmod(0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, name="gaia-control", daemon=True)

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and remove the socket file."""
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)


def _dispatch(methods: dict[str, Callable[..., Any]], request: Any) -> dict[str, Any]:
    if not isinstance(request, dict) or request.get("method") not in methods:
        return {"ok": False, "error": f"unknown control method {request!r:.80}", "exit_code": 2}
    try:
        return {"ok": True, "result": methods[request["method"]](**request.get("params", {}))}
    except GaiaError as exc:
        return {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
    except Exception as exc:  # report, keep serving
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "exit_code": 1}


class ControlClient:
    """A connection to a running node's control socket."""

    def __init__(self, home: Home, timeout: float = 30.0) -> None:
        path = socket_path(home)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except OSError:
            self._sock.close()
            raise NodeError(f"no node is running for home {home.root} (no answer on {path})",
                            hint="start one with `gaia node` (or `gaia node --detach`)") from None

    def call(self, method: str, **params: Any) -> Any:
        """Call ``method`` on the node; its GaiaError comes back as a NodeError with the same message."""
        try:
            _send(self._sock, {"method": method, "params": params})
            reply = _recv(self._sock)
        except (OSError, ConnectionError) as exc:
            raise NodeError(f"lost the connection to the node: {exc}") from None
        if not reply.get("ok"):
            error = NodeError(reply.get("error", "node refused the request"))
            error.exit_code = reply.get("exit_code", NodeError.exit_code)
            raise error
        return reply.get("result")

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
