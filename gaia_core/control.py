"""The node's local control socket: how ``gaia status``, ``submit`` and friends talk to a running node.

A Unix socket in a directory only this user can enter: the node's home (mode 0700), or, when the
home's path is too long for a socket, a fresh private directory (``mkdtemp`` under
``$XDG_RUNTIME_DIR`` or the temp dir) named in ``<home>/control.path``. Server and client both refuse
a socket whose directory is not owned by this user and closed to others, so no other local user can
put a socket of their own in the node's place. Each call is one msgpack frame ``{"method", "params"}``
prefixed by its length, answered by ``{"ok", "result"}`` or ``{"ok": false, "error", "exit_code"}``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import stat
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from gaia_core.config import PRIVATE_FILE, Home, write_private
from gaia_core.errors import GaiaError, NodeError

_HEADER = struct.Struct("!I")
MAX_FRAME = 256 << 20
SOCKET_NAME = "control.sock"
#: Longest socket path used (Linux allows 107 bytes).
_MAX_SOCKET_PATH = 100


def socket_path(home: Home) -> Path | None:
    """Where the node's control socket is: in the home, else in the private directory the home records."""
    path = home.root / SOCKET_NAME
    if _fits(path):
        return path
    try:
        recorded = Path(home.control_record.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        return None  # no node has served this home (or the record is unreadable: as good as none)
    return recorded / SOCKET_NAME if recorded.is_absolute() else None


def check_private(directory: Path) -> None:
    """NodeError unless ``directory`` is a directory owned by this user that no one else may enter."""
    try:
        info = directory.lstat()
    except OSError as exc:
        raise NodeError(f"cannot check the control socket's directory {directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise NodeError(
            f"refusing the control socket in {directory}: not a directory private to this user "
            f"(owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o})",
            hint=f"if it is yours, run `chmod 700 {directory}`; otherwise remove it or use another --home",
        )


def _fits(path: Path) -> bool:
    return len(os.fsencode(path)) <= _MAX_SOCKET_PATH


def _private_directory() -> Path:
    """A new directory with an unpredictable name and mode 0700, under $XDG_RUNTIME_DIR when usable."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    parent = None
    if runtime:
        with contextlib.suppress(NodeError):
            check_private(Path(runtime))
            parent = runtime
    directory = Path(tempfile.mkdtemp(prefix="gaia-", dir=parent))
    if not _fits(directory / SOCKET_NAME):
        directory.rmdir()
        raise NodeError(f"the home's path and the temp dir {directory.parent} are too long for a control socket",
                        hint="set TMPDIR to a short directory, or use a shorter --home")
    return directory


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
        self.home = home
        self.methods = methods
        self._clear_stale(home)
        self.path = home.root / SOCKET_NAME
        if not _fits(self.path):
            self.path = _private_directory() / SOCKET_NAME
            write_private(home.control_record, str(self.path.parent))
        check_private(self.path.parent)
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
        self.path.chmod(PRIVATE_FILE)
        self._thread = threading.Thread(target=self._server.serve_forever, name="gaia-control", daemon=True)

    @staticmethod
    def _clear_stale(home: Home) -> None:
        """Refuse when a node already serves ``home``; remove what a node that died left behind."""
        old = socket_path(home)
        if old is None or not os.path.lexists(old.parent):
            return
        try:
            ControlClient(home, timeout=2.0).close()
        except NodeError:
            pass
        else:
            raise NodeError(f"a node is already running for home {home.root}",
                            hint="stop it with `gaia stop`, or give this one another --home")
        with contextlib.suppress(NodeError, OSError):
            check_private(old.parent)  # only ever clean up a directory of our own
            old.unlink(missing_ok=True)
            if old.parent != home.root:
                old.parent.rmdir()

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and remove the socket (and its private directory); safe when never started."""
        if self._thread.is_alive():  # shutdown() waits for serve_forever(), which never ran otherwise
            self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)
        if self.path.parent != self.home.root:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()
            self.home.control_record.unlink(missing_ok=True)


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
        if path is None or not os.path.lexists(path):
            where = f" at {path}" if path else ""
            raise NodeError(f"no node is running for home {home.root} (no control socket{where})",
                            hint="start one with `gaia node` (or `gaia node --detach`)")
        check_private(path.parent)
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
