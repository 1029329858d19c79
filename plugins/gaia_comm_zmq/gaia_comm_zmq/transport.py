"""The Transport role over ZeroMQ: a ROUTER in, one DEALER per peer out, one I/O thread.

Every socket is owned by a single I/O thread. Other threads hand it work
through per-thread inproc PUSH sockets (``request``, ``announce``, replies
from the handler pool); the handler runs on a fixed pool of worker threads so
a slow handler never stalls the network. See docs/network.md for the
protocol, the security modes and the backpressure policy.

Authenticate the channel, sign the evidence: with CurveZMQ, a request, reply or ping to a peer
whose kernel binds this node's Curve key (the peer says so in its ping replies) carries no
Ed25519 signature of its own, only sender, time and nonce; the peer's gate authenticates it by
the channel. Hellos and their replies (which carry the record before any binding) stay signed,
so does everything to a peer that does not (yet) bind this node's key, in particular the record
that binds it, and everything in insecure mode.
"""

from __future__ import annotations

import collections
import functools
import itertools
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import msgpack
import zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from gaia_comm_zmq import probe, wire
from gaia_comm_zmq.address import format_address, parse_address
from gaia_comm_zmq.keys import CurveKey
from gaia_comm_zmq.limits import RateLimit
from gaia_comm_zmq.settings import Settings
from gaia_core.plugin_api import (
    Channel,
    CodecError,
    ConfigError,
    Envelope,
    GaiaError,
    IdentityError,
    MessageHandler,
    NodeContext,
    NodeError,
    NodeRecord,
    PeerInfo,
    RefusalLog,
    Refused,
    UsageError,
    codec,
    seal,
)

_ZAP = "inproc://zeromq.zap.01"
_CMD = "inproc://gaia-commands"
#: Liveness windows an address learnt by peer exchange gets to answer before it is dropped.
HINT_PATIENCE = 3
#: Handler calls allowed to wait per handler worker before the transport stops reading requests.
BACKLOG_PER_WORKER = 4
#: Messages taken from one socket per loop turn, so that no socket starves the others.
_DRAIN = 256
#: Peer addresses passed on per hello or ping reply (peer exchange).
_MAX_HINTS = 32
#: Refused curve keys remembered by the ZAP handler, and connections whose node id is remembered.
_MAX_KEYS = 10_000
#: Largest NodeRecord taken from a hello.
_MAX_RECORD_BYTES = 64 << 10
_WILDCARD = ("://*", "://0.0.0.0", "://[::]", "://::")
#: Reconnect back-off of a dialled peer: first retry after 100 ms, doubling up to this cap.
RECONNECT_MAX_MS = 1000
#: A connect() that has not completed by then is abandoned and retried (TCP's own SYN back-off reaches minutes).
CONNECT_TIMEOUT_MS = 2000
#: Answers at least this large are tracked until ZeroMQ has written them; they count toward max_reply_bytes*.
_TRACKED_REPLY = 1024
#: Seconds a requester refused as busy is told to wait before asking again.
RETRY_AFTER_S = 0.5


class _Waiter:
    """A caller waiting for the reply to one request attempt."""

    __slots__ = ("peer_id", "event", "body", "error")

    def __init__(self, peer_id: str) -> None:
        self.peer_id = peer_id
        self.event = threading.Event()
        self.body: bytes | None = None
        self.error: str | None = None


class _Peer:
    """One dialled peer: its DEALER socket, record and liveness. Touched by the I/O thread only."""

    __slots__ = ("address", "endpoint", "key", "sock", "node_id", "record", "state", "last_seen", "rtt_s",
                 "hello_at", "backlog", "dialled_at", "hinted", "binds_us")

    def __init__(self, address: str, endpoint: str, key: bytes | None, sock: zmq.Socket, hinted: bool) -> None:
        self.address = address
        self.dialled_at = time.monotonic()
        self.hinted = hinted  # learnt from another peer, not configured: given up on if it never answers
        self.endpoint = endpoint
        self.key = key
        self.sock = sock
        self.node_id: str | None = None
        self.record: NodeRecord | None = None
        self.state = "connecting"
        self.last_seen = 0.0
        self.rtt_s: float | None = None
        self.hello_at = 0.0
        self.binds_us = False  # the peer's kernel binds our channel key: messages to it need no signature
        self.backlog: collections.deque[tuple[float, list[Any]]] = collections.deque()

    def info(self) -> PeerInfo:
        return PeerInfo(node_id=self.node_id or "", address=self.address, state=self.state,
                        last_seen=self.last_seen, rtt_s=self.rtt_s, record=self.record)


class ZmqTransport:
    """Envelopes between peers over ZeroMQ (CurveZMQ by default), with discovery and liveness.

    Each is signed, or, to a peer that binds this node's Curve key, authenticated by the channel alone.
    """

    def __init__(self, context: NodeContext) -> None:
        if context.identity is None:
            raise IdentityError("the zmq transport needs this node's identity", hint="run `gaia init` first")
        self.settings = Settings.from_config(context.config)
        self._identity = context.identity
        self._home = context.home
        self._curve: CurveKey | None = None  # this plugin's Curve key, loaded (or created) at start
        self._log = context.log
        self._ids = itertools.count(1)
        self._waiters: dict[int, _Waiter] = {}
        self._peers: dict[str, _Peer] = {}  # identified peers by node id
        self._dials: dict[str, _Peer] = {}  # every dialled peer by endpoint
        self._socks: dict[zmq.Socket, _Peer] = {}
        self._internal: dict[int, tuple[str, _Peer, float]] = {}  # our hellos and pings in flight
        self._denied: set[bytes] = set()
        self._connections: dict[int, str] = {}  # accepted TCP connections: file descriptor -> client address
        self._per_address: collections.Counter[str] = collections.Counter()  # open connections by client address
        s = self.settings
        self._hello_limit = RateLimit(s.hello_rate, s.hello_burst)
        self._connect_limit = RateLimit(s.connect_rate, s.connect_burst)
        self._announce_limit = RateLimit(s.announce_rate, s.announce_burst)
        self._speaks_for: collections.OrderedDict[bytes, str] = collections.OrderedDict()  # connection -> node id
        self._counts: collections.Counter[str] = collections.Counter()
        self._refusals = RefusalLog(self._log, "the zmq transport")
        self._local = threading.local()
        self._cmd_socks: list[zmq.Socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ctx: zmq.Context | None = None
        self._poller = zmq.Poller()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._backlog = 0  # handler calls queued or running; past BACKLOG_PER_WORKER × workers, reading pauses
        self._pending: dict[bytes, tuple[int, int]] = {}  # requests queued or in a handler by connection: count, bytes
        self._pending_all = (0, 0)  # the same, all connections together
        self._unread: dict[bytes, collections.deque[tuple[zmq.MessageTracker, int]]] = {}  # answers ZeroMQ holds
        self._unread_bytes: collections.Counter[bytes] = collections.Counter()  # their bytes by connection
        self._unread_total = 0
        self._overflowed: set[bytes] = set()  # connections an answer was dropped for: busy until they read all
        self._handler: MessageHandler | None = None
        self._record: NodeRecord | None = None
        self._address = ""
        self._endpoint = ""

    # ------------------------------------------------------------------ public API

    @property
    def record(self) -> NodeRecord | None:
        """The NodeRecord this transport tells peers: addresses and its ``transport`` extension filled in at start."""
        return self._record

    def start(self, handler: MessageHandler, record: NodeRecord) -> str:
        """Bind the listen address, start the I/O thread, dial the bootstrap peers; return the dial address."""
        if self._ctx is not None:
            raise UsageError("this transport was already started; build a new one")
        if record.node_id != self._identity.node_id:
            raise UsageError("the NodeRecord given to start() is not this node's (node ids differ)")
        s = self.settings
        curve = self._curve = CurveKey.load_or_create(self._home) if s.curve else None
        ctx = zmq.Context(io_threads=1)
        try:
            zap = self._socket(ctx, zmq.REP)
            zap.bind(_ZAP)
            router = self._socket(ctx, zmq.ROUTER)
            router.router_mandatory = 1
            router.sndhwm = s.reply_hwm
            self._liveness(router)
            if curve is not None:
                router.curve_server = True
                router.curve_secretkey = z85.encode(curve.secret)
                router.curve_publickey = z85.encode(curve.public)
            else:
                self._log.warning("zmq transport runs INSECURE: plaintext, no CurveZMQ; for debugging only")
            router.zap_domain = b"gaia"  # every handshake, CURVE or plaintext, passes _serve_zap
            monitor = router.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
            try:
                router.bind(s.listen)
            except zmq.ZMQError as exc:
                raise ConfigError(f"cannot listen on {s.listen}: {exc}",
                                  hint="pick a free port: `gaia node --listen tcp://127.0.0.1:7701` "
                                  "(tcp://127.0.0.1:* takes any free one), or set [node] listen") from None
            endpoint = router.get_string(zmq.LAST_ENDPOINT)
            advertise = s.advertise or endpoint
            if any(w in advertise for w in _WILDCARD):
                raise ConfigError(f"listening on every interface ({endpoint}) but no [node] advertise address",
                                  hint="set [node] advertise to the address peers should dial, e.g. tcp://203.0.113.7:7700")
            cmd = self._socket(ctx, zmq.PULL)
            cmd.bind(_CMD)
        except BaseException:
            ctx.destroy(linger=0)
            raise
        self._ctx = ctx
        self._endpoint = advertise
        self._address = format_address(advertise, curve.public if curve is not None else None)
        keys = {"curve": curve.public} if curve is not None else {}  # the record's signed transport extension
        self._record = attrs.evolve(record, addresses=(advertise,), transport={**record.transport, **keys})
        self._handler = handler
        self._pool = ThreadPoolExecutor(max_workers=s.workers, thread_name_prefix="gaia-zmq-handler")
        self._thread = threading.Thread(target=self._loop, args=(router, cmd, zap, monitor), name="gaia-zmq-io",
                                        daemon=True)
        self._thread.start()
        self._log.info("zmq transport listening on %s (security=%s, auth=%s)", endpoint, s.security, s.auth)
        for address in s.bootstrap:
            self.connect(address)
        return self._address

    def stop(self) -> None:
        """Close every socket and thread; idempotent. Requests in flight fail with NodeError."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        if self._ctx is None:
            return
        try:
            self._cmd([b"stop"])
        except NodeError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for waiter in list(self._waiters.values()):
            waiter.error = "the transport stopped"
            waiter.event.set()
        if self._thread is not None and self._thread.is_alive():
            # its sockets are still in use: libzmq may abort the process if they are closed from here
            self._log.warning("zmq transport: the I/O thread did not stop within 10 s; its sockets close with "
                              "the process")
            return
        self._ctx.destroy(linger=0)

    def connect(self, address: str) -> None:
        """Dial ``address`` (``tcp://host:port#curvekey``); the peer is listed once it answers hello."""
        parse_address(address, curve=self.settings.curve)
        self._cmd([b"dial", address.strip().encode()])

    def request(self, peer_id: str, kind: str, body: bytes, *, timeout: float = 10.0) -> bytes:
        """Send a request (signed unless :meth:`channel_bound`) and wait for the reply body; NodeError on refusal
        or after every retry timed out."""
        if kind.startswith(wire.INTERNAL):
            raise UsageError(f"message kind {kind!r} is reserved for the transport")
        if not timeout > 0:
            raise UsageError(f"request timeout must be positive, got {timeout}")
        if peer_id not in self._peers:
            raise NodeError(f"unknown peer {peer_id[:12]}",
                            hint="connect to it, or to a peer that knows it, first; see `gaia peers`")
        attempts = self.settings.retries + 1
        per_attempt = timeout / attempts
        for _ in range(attempts):
            corr = next(self._ids)
            waiter = _Waiter(peer_id)
            self._waiters[corr] = waiter
            try:
                head = self._head(wire.REQUEST, corr, kind, body, sign=not self.channel_bound(peer_id))
                deadline = struct.pack("!d", time.monotonic() + per_attempt)
                self._cmd([b"req", peer_id.encode(), deadline, head, body])
                if waiter.event.wait(per_attempt):
                    if waiter.error is not None:
                        raise NodeError(f"peer {peer_id[:12]} refused {kind}: {waiter.error}")
                    assert waiter.body is not None
                    return waiter.body
            finally:
                self._waiters.pop(corr, None)
        with self._lock:
            self._counts["request_timeouts"] += 1
        raise NodeError(f"no reply from peer {peer_id[:12]} to {kind} within {timeout:g}s ({attempts} attempts)",
                        hint="the peer is down or overloaded; see `gaia peers`")

    def announce(self, kind: str, body: bytes) -> None:
        """Send an announcement to every peer that is up; dropped (and counted) under backpressure.

        It is signed for each peer that does not bind this node's channel (so the first record a
        peer learns, and any record in insecure mode, is signed), unsigned for the others.
        """
        if kind.startswith(wire.INTERNAL):
            raise UsageError(f"message kind {kind!r} is reserved for the transport")
        unbound = any(not self.channel_bound(node_id) for node_id, peer in list(self._peers.items())
                      if peer.state == "up")
        # signed for the peers that do not bind us; b"" (a peer that came up since: dropped) when all do
        unsigned = self._head(wire.ANNOUNCE, 0, kind, body, sign=False)
        signed = self._head(wire.ANNOUNCE, 0, kind, body, sign=True) if unbound else b""
        if not self._cmd([b"ann", unsigned, signed, body], block=False):
            with self._lock:
                self._counts["announce_dropped"] += 1

    def _head(self, mtype: int, corr: int, kind: str, body: bytes, *, sign: bool) -> bytes:
        """The header frame of a new envelope of ``kind`` around ``body``: Ed25519-signed when ``sign``, else
        unsigned (for a channel the receiver binds), built without an envelope object (µs per message)."""
        if not (isinstance(kind, str) and 0 < len(kind) <= 64 and isinstance(body, bytes)):
            raise UsageError(f"a message needs a kind of 1 to 64 characters and a bytes body, got {kind!r} and "
                             f"{type(body).__name__}")
        if sign:
            return wire.header(mtype, corr, seal(self._identity, kind, body))
        return wire.unsigned_header(mtype, corr, kind, self._identity.node_id)

    def channel_bound(self, peer_id: str) -> bool:
        """True when ``peer_id``'s kernel binds this node's Curve key, so messages to it go without a signature."""
        peer = self._peers.get(peer_id)
        return self.settings.curve and peer is not None and peer.binds_us

    def peers(self) -> list[PeerInfo]:
        """Every identified peer, up or down, with last seen, RTT and its NodeRecord."""
        return [p.info() for p in list(self._peers.values())]

    def stats(self) -> dict[str, Any]:
        """Counters: messages sent and received, drops, timeouts, and the transport's own refusals by reason.

        Authentication refusals (forged, stale, replayed, ...) are the kernel's, counted by its gate.
        """
        with self._lock:
            counts = dict(self._counts)
        counts["dials"] = len(self._dials)
        counts["connections"] = len(self._connections)
        return {"counts": counts, "rejected": self._refusals.counts()}

    def probe(self, address: str, *, timeout: float = 3.0, window_s: float = 60.0) -> dict[str, str]:
        """Dial ``address`` once on a socket of its own and say what stops it (``gaia doctor``); see
        :func:`gaia_comm_zmq.probe.probe`. Works whether or not this transport is started."""
        curve = CurveKey.load_or_create(self._home) if self.settings.curve else None
        return probe.probe(address, settings=self.settings, identity=self._identity, curve=curve, timeout=timeout,
                           window_s=window_s)

    # ------------------------------------------------------------------ callers -> I/O thread

    def _socket(self, ctx: zmq.Context, kind: int) -> zmq.Socket:
        sock = ctx.socket(kind)
        sock.linger = 0
        sock.sndhwm = self.settings.send_hwm
        sock.rcvhwm = self.settings.recv_hwm
        sock.maxmsgsize = self.settings.max_message_bytes + 4096
        sock.copy_threshold = self.settings.copy_threshold
        return sock

    def _cmd(self, frames: list[Any], *, block: bool = True) -> bool:
        """Hand ``frames`` to the I/O thread; False when ``block`` is off and its inbox is full."""
        ctx = self._ctx
        if ctx is None or (self._stopping.is_set() and frames[0] != b"stop"):
            raise NodeError("the transport is not running", hint="start the node first")
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = self._socket(ctx, zmq.PUSH)
            sock.connect(_CMD)
            with self._lock:
                self._cmd_socks.append(sock)
            self._local.sock = sock
        try:
            wire.send(sock, frames, block=block)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            raise NodeError(f"the transport stopped ({exc})") from None
        return True

    # ------------------------------------------------------------------ the I/O thread

    def _loop(self, router: zmq.Socket, cmd: zmq.Socket, zap: zmq.Socket, monitor: zmq.Socket) -> None:
        for sock in (router, cmd, zap, monitor):
            self._poller.register(sock, zmq.POLLIN)
        beat = self.settings.heartbeat_s
        next_beat = time.monotonic()
        paused = False
        while not self._stopping.is_set():
            wait_ms = int(max(0.0, next_beat - time.monotonic()) * 1000)
            if paused != (self._backlog >= BACKLOG_PER_WORKER * self.settings.workers):
                # Backpressure: while the handlers are behind, stop reading requests; ZeroMQ's
                # receive high-water mark then holds further messages back at the senders.
                paused = not paused
                self._poller.modify(router, 0 if paused else zmq.POLLIN)
                self._counts["paused" if paused else "resumed"] += 1
            if paused:
                wait_ms = min(wait_ms, 5)
            try:
                events = self._poller.poll(wait_ms)
            except zmq.ContextTerminated:
                return
            for sock, event in events:
                try:
                    if sock is router:
                        self._drain_router(router)
                    elif sock is cmd:
                        self._drain_commands(cmd, router)
                    elif sock is zap:
                        self._serve_zap(zap)
                    elif sock is monitor:
                        self._count_connections(monitor)
                    elif sock in self._socks:
                        peer = self._socks[sock]
                        if event & zmq.POLLOUT:
                            self._flush(peer)
                        if event & zmq.POLLIN:
                            self._drain_dealer(peer)
                except zmq.ContextTerminated:
                    return
                except Exception:  # keep serving every other peer; the failure is logged with its traceback
                    self._counts["io_errors"] += 1
                    self._log.exception("zmq transport: unexpected error while serving a socket")
            if time.monotonic() >= next_beat:
                self._beat()
                next_beat = time.monotonic() + beat

    def _drain_commands(self, cmd: zmq.Socket, router: zmq.Socket) -> None:
        for _ in range(_DRAIN):
            try:
                frames = wire.recv(cmd)
            except zmq.Again:
                return
            op = frames[0].bytes
            if op == b"req":
                peer = self._peers.get(frames[1].bytes.decode())
                if peer is not None:
                    self._send(peer, frames[3:], deadline=struct.unpack("!d", frames[2].bytes)[0])
            elif op == b"ann":
                unsigned, signed, body = frames[1:]
                for peer in list(self._peers.values()):
                    if peer.state != "up":
                        continue
                    head = unsigned if self.settings.curve and peer.binds_us else signed
                    if head.bytes:
                        self._send(peer, [head, body], deadline=None)
                    else:
                        self._counts["announce_unsigned_dropped"] += 1
            elif op == b"rep":
                self._route(router, frames[1].bytes, frames[2], frames[3])
            elif op == b"dial":
                self._dial(frames[1].bytes.decode())
            elif op == b"stop":
                return

    def _send(self, peer: _Peer, frames: list[Any], *, deadline: float | None) -> None:
        """Send to a peer's DEALER. ``deadline`` None: droppable (announcements, pings); else queued until then."""
        if deadline is not None and peer.backlog:
            peer.backlog.append((deadline, frames))  # keep requests in order behind the backlog
            return
        try:
            wire.send(peer.sock, frames)
            self._counts["sent"] += 1
        except zmq.Again:
            if deadline is None:
                self._counts["dropped_hwm"] += 1
            else:
                peer.backlog.append((deadline, frames))
                self._poller.modify(peer.sock, zmq.POLLIN | zmq.POLLOUT)
                self._counts["backlogged"] += 1

    def _flush(self, peer: _Peer) -> None:
        now = time.monotonic()
        while peer.backlog:
            deadline, frames = peer.backlog[0]
            if deadline >= now:
                try:
                    wire.send(peer.sock, frames)
                except zmq.Again:
                    return
                self._counts["sent"] += 1
            else:
                self._counts["expired_in_backlog"] += 1
            peer.backlog.popleft()
        self._poller.modify(peer.sock, zmq.POLLIN)

    def _route(self, router: zmq.Socket, rid: bytes, head: Any, body: Any) -> None:
        """Send a reply through the ROUTER; one that cannot be queued is counted (the requester retries).

        An answer of _TRACKED_REPLY bytes or more is tracked until ZeroMQ has written it; past the
        bytes a peer has not read (``max_reply_bytes_per_peer``, ``max_reply_bytes``) it is dropped.
        """
        size = len(body)
        tracked = size >= _TRACKED_REPLY
        if tracked:
            refusal = self._reply_refusal(rid, size)
            if refusal is not None:
                self._refusals.add(refusal[0], rid.hex(), refusal[1])
                if refusal[0] == "reply_unread":
                    self._overflowed.add(rid)
                return
            body = zmq.Frame(body.buffer if isinstance(body, zmq.Frame) else body, track=True, copy=False)
        try:
            wire.send(router, [rid, head, body])
            self._counts["replies"] += 1
        except zmq.Again:
            self._counts["reply_dropped_hwm"] += 1
            return
        except zmq.ZMQError:
            self._counts["reply_unroutable"] += 1
            return
        if tracked:
            self._unread.setdefault(rid, collections.deque()).append((body.tracker, size))
            self._unread_bytes[rid] += size
            self._unread_total += size

    def _reply_refusal(self, rid: bytes, size: int) -> tuple[str, str] | None:
        """Why an answer of ``size`` bytes to ``rid`` is dropped (reason, detail), or None when it may go."""
        s = self.settings
        unread = self._unread_of(rid)
        if unread and unread + size > s.max_reply_bytes_per_peer:
            return "reply_unread", (f"answer of {size} bytes dropped: {unread} bytes of answers to this peer are not "
                                    f"read yet (max_reply_bytes_per_peer {s.max_reply_bytes_per_peer})")
        total = self._unread_total
        if total + size > s.max_reply_bytes:
            for other in list(self._unread):  # forget what was written since to every peer, then look again
                self._unread_of(other)
            total = self._unread_total
        if total and total + size > s.max_reply_bytes:
            return "replies_full", (f"answer of {size} bytes dropped: {total} bytes of answers are not read yet "
                                    f"(max_reply_bytes {s.max_reply_bytes})")
        return None

    def _unread_of(self, rid: bytes) -> int:
        """Bytes of tracked answers to ``rid`` that ZeroMQ still holds; the ones written are forgotten."""
        sent = self._unread.get(rid)
        if sent is None:
            self._overflowed.discard(rid)
            return 0
        while sent and sent[0][0].done:  # one connection's answers leave in order
            size = sent.popleft()[1]
            self._unread_bytes[rid] -= size
            self._unread_total -= size
        if not sent:
            del self._unread[rid], self._unread_bytes[rid]
            self._overflowed.discard(rid)
            return 0
        return self._unread_bytes[rid]

    def _reply(self, router: zmq.Socket, rid: bytes, mtype: int, corr: int, body: bytes, *, sign: bool = True) -> None:
        kind = wire.REPLY_KIND if mtype == wire.REPLY else wire.ERROR_KIND
        self._route(router, rid, self._head(mtype, corr, kind, body, sign=sign), body)

    # ------------------------------------------------------------------ inbound: requests and announcements

    def _drain_router(self, router: zmq.Socket) -> None:
        """Take up to _DRAIN messages; the announcements among them go to one handler call, in order."""
        announced: list[tuple[Envelope, Channel | None]] = []
        for _ in range(_DRAIN):
            try:
                rid, *rest = wire.recv(router)  # Frames: the first carries the ZAP User-Id
            except zmq.Again:
                break
            frames = [frame.bytes for frame in rest]
            self._counts["received"] += 1
            try:
                self._inbound(router, rid, frames, announced)
            except wire.Refused as refused:
                self._refusals.add(refused.reason, _client_key(rid).hex() or rid.bytes.hex(), str(refused))
            except Refused:
                pass  # the kernel's gate refused it, and counted and logged it
        if announced:  # one hop to the handler pool per drain, not one per announcement
            self._submit(self._announce_all, announced)

    def _announce_all(self, announced: list[tuple[Envelope, Channel | None]]) -> None:
        """Pass received announcements to the handler (a worker thread); one that fails does not stop the rest."""
        for env, channel in announced:
            self._guarded_call(self._handler.on_announce, env, channel)  # type: ignore[union-attr]

    def _inbound(self, router: zmq.Socket, rid_frame: zmq.Frame, frames: list[bytes],
                 announced: list[tuple[Envelope, Channel | None]]) -> None:
        mtype, corr, env = wire.parse(frames, self.settings.max_message_bytes)
        rid = rid_frame.bytes
        if mtype not in (wire.REQUEST, wire.ANNOUNCE):
            raise wire.Refused("unexpected", f"message type {mtype} on the listening socket")
        channel = _curve_channel(_client_key(rid_frame)) if self.settings.curve else None
        conn = channel.key if channel is not None else rid  # what one connection is known by
        if not self._allowed(env.sender):  # before the signature check: refusing costs nothing
            if self.settings.curve and len(self._denied) < _MAX_KEYS:
                self._denied.add(_client_key(rid_frame))  # refused at the ZAP handshake from now on
            if mtype == wire.REQUEST:
                self._reply(router, rid, wire.ERROR, corr, b"this node accepts only allow-listed peers")
            raise wire.Refused("not_allowed", f"node {env.sender[:12]} is not on the allow-list")
        if mtype == wire.ANNOUNCE:
            if env.kind.startswith(wire.INTERNAL):
                raise wire.Refused("unexpected", f"announcement of reserved kind {env.kind}")
            if len(env.body) > self.settings.max_announce_bytes:
                raise wire.Refused("announce_oversized",
                                   f"{len(env.body)} bytes > max_announce_bytes {self.settings.max_announce_bytes}")
            if not self._announce_limit.allow(conn):
                raise wire.Refused("announce_rate", "more announcements than this connection's rate allows")
            announced.append((env, channel))
        elif env.kind == wire.HELLO:
            if not self._hello_limit.allow(conn):  # before any signature: a flood costs us almost nothing
                raise wire.Refused("hello_rate", "more hellos than this connection's rate allows")
            # A signed hello may come on a new key (a node back with another Curve key): it is checked
            # against its own signed record's key below, not against the binding of the old one.
            self._handler.authenticate(env, None if env.signature else channel)  # type: ignore[union-attr]
            record, hints = self._read_hello(env)
            if self.settings.curve and _client_key(rid_frame) != record.channel_keys().get("curve"):
                raise wire.Refused("bad_record", "record's curve key is not the connection's")
            self._speaks_for_one(conn, record.node_id)
            known = self._peers.get(record.node_id)
            if known is not None:
                known.binds_us = False  # it (re)started or redialled: sign until its ping replies say it binds us
            self._reply(router, rid, wire.REPLY, corr, self._hello_body())
            self._learn(record, hints)
        elif env.kind == wire.PING:
            self._handler.authenticate(env, channel)  # type: ignore[union-attr]
            body = msgpack.packb([env.sender in self._peers, self._hints(), self._binds(env.sender, channel)])
            self._reply(router, rid, wire.REPLY, corr, body, sign=not self.channel_bound(env.sender))
        elif env.kind.startswith(wire.INTERNAL):
            raise wire.Refused("unexpected", f"request of reserved kind {env.kind}")
        else:
            size = sum(map(len, frames))
            self._admit(router, rid, corr, env, size)
            self._submit(self._serve, rid, corr, env, channel, size)

    def _admit(self, router: zmq.Socket, rid: bytes, corr: int, env: Envelope, size: int) -> None:
        """Count a request of ``size`` bytes toward the handler queue's bounds, or answer it "busy ... retry
        after" at once and raise wire.Refused (its reason: ``busy_unread``, ``busy_peer`` or ``busy``)."""
        s = self.settings
        unread = self._unread_of(rid)
        with self._lock:
            count, held = self._pending.get(rid, (0, 0))
            all_count, all_bytes = self._pending_all
            if unread >= s.max_reply_bytes_per_peer or (unread and rid in self._overflowed):
                refusal = ("busy_unread", f"{unread} bytes of answers to this peer are not read yet, and an "
                           f"answer was dropped (max_reply_bytes_per_peer {s.max_reply_bytes_per_peer})")
            elif count >= s.max_pending_requests_per_peer or (count and held + size
                                                               > s.max_pending_request_bytes_per_peer):
                refusal = ("busy_peer", f"{count} requests ({held} bytes) from this peer wait for a handler "
                           f"(max_pending_requests_per_peer {s.max_pending_requests_per_peer}, "
                           f"max_pending_request_bytes_per_peer {s.max_pending_request_bytes_per_peer})")
            elif all_count >= s.max_pending_requests or (all_count and all_bytes + size
                                                         > s.max_pending_request_bytes):
                refusal = ("busy", f"{all_count} requests ({all_bytes} bytes) wait for a handler "
                           f"(max_pending_requests {s.max_pending_requests}, "
                           f"max_pending_request_bytes {s.max_pending_request_bytes})")
            else:
                self._pending[rid] = (count + 1, held + size)
                self._pending_all = (all_count + 1, all_bytes + size)
                return
        self._reply(router, rid, wire.ERROR, corr, f"busy: {refusal[1]}; retry after {RETRY_AFTER_S:g} s".encode(),
                    sign=not self.channel_bound(env.sender))
        raise wire.Refused(*refusal)

    def _release(self, rid: bytes, size: int) -> None:
        """Take a served request of ``size`` bytes off the handler queue's bounds (any thread)."""
        with self._lock:
            count, held = self._pending.pop(rid)
            if count > 1:
                self._pending[rid] = (count - 1, held - size)
            all_count, all_bytes = self._pending_all
            self._pending_all = (all_count - 1, all_bytes - size)

    def _binds(self, node_id: str, channel: Channel | None) -> bool:
        """True when the kernel binds ``channel``'s key to ``node_id`` (told to that peer in ping replies).

        A handler that cannot say (no ``bound_key``) binds nothing: the peer then keeps signing.
        """
        bound_key = getattr(self._handler, "bound_key", None)
        return channel is not None and bound_key is not None and bound_key(node_id, channel.scheme) == channel.key

    def _speaks_for_one(self, conn: bytes, node_id: str) -> None:
        """A connection introduces one node only: hellos naming others on it are refused."""
        known = self._speaks_for.get(conn)
        if known is not None and known != node_id:
            raise wire.Refused("hello_identity", f"this connection already spoke for {known[:12]}")
        self._speaks_for[conn] = node_id
        self._speaks_for.move_to_end(conn)
        if len(self._speaks_for) > _MAX_KEYS:
            self._speaks_for.popitem(last=False)

    def _serve(self, rid: bytes, corr: int, env: Envelope, channel: Channel | None, size: int) -> None:
        """Answer one request of ``size`` bytes (worker thread), then free its place in the handler queue."""
        try:
            self._answer(rid, corr, env, channel)
        finally:
            self._release(rid, size)

    def _answer(self, rid: bytes, corr: int, env: Envelope, channel: Channel | None) -> None:
        """Run the kernel's gate and the handler for one request; send its reply or refusal."""
        mtype = wire.REPLY
        try:
            body = self._handler.on_request(env, channel)  # type: ignore[union-attr]
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise TypeError(f"on_request returned {type(body).__name__}, not bytes")
            body = bytes(body)
        except Refused:
            return  # not authenticated: counted by the gate, and no reply (one would cost us a signature)
        except GaiaError as exc:
            mtype, body = wire.ERROR, str(exc).encode()
        except Exception:
            self._log.exception("message handler failed on %s from %s", env.kind, env.sender[:12])
            mtype, body = wire.ERROR, b"the peer's handler failed (see its log)"
        head = self._head(mtype, corr, wire.REPLY_KIND if mtype == wire.REPLY else wire.ERROR_KIND, body,
                          sign=not self.channel_bound(env.sender))
        try:
            self._cmd([b"rep", rid, head, body])
        except NodeError:
            pass  # stopping: the requester's attempt times out

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._backlog += 1
        try:
            self._pool.submit(self._guarded, fn, *args)  # type: ignore[union-attr]
        except RuntimeError:  # pool shut down while stopping
            with self._lock:
                self._backlog -= 1

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._guarded_call(fn, *args)
        finally:
            with self._lock:
                self._backlog -= 1

    def _guarded_call(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self._log.exception("zmq transport: handler callback %s failed", getattr(fn, "__name__", fn))

    def _count_connections(self, monitor: zmq.Socket) -> None:
        """Keep the accepted connections, and their count by client address, up to date from the listener's
        monitor events."""
        for _ in range(_DRAIN):
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            fd = event["value"]
            address = self._connections.pop(fd, None)
            if address is not None:  # a disconnect, or an accept reusing a descriptor whose close we missed
                self._per_address[address] -= 1
                if self._per_address[address] <= 0:
                    del self._per_address[address]
            if event["event"] == zmq.EVENT_ACCEPTED:
                address = _peer_address(fd)
                self._connections[fd] = address
                self._per_address[address] += 1

    def _serve_zap(self, zap: zmq.Socket) -> None:
        """Answer one ZAP request: accept a client unless its key was refused before, its address holds more
        than ``max_connections_per_address`` connections, more than ``max_connections`` are open (each address
        counted with at most its share), or its address opens connections faster than ``connect_rate``.

        The User-Id given back is the client's key in hex; every message on that
        connection carries it, and a hello must come with a record naming that key.
        """
        try:
            frames = zap.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        if len(frames) < 6:
            zap.send_multipart([b"1.0", frames[1] if len(frames) > 1 else b"", b"500", b"bad ZAP request", b"", b""])
            return
        version, request_id, _domain, address, _identity, mechanism, *creds = frames
        key = creds[0] if mechanism == b"CURVE" and creds else b""
        client = address.decode("ascii", "replace")
        s = self.settings
        refusal = None
        if key and key in self._denied:
            refusal = ("zap_denied", "curve key refused earlier (not on the allow-list)")
        elif self._per_address[client] > s.max_connections_per_address:
            refusal = ("connections_per_address", f"{self._per_address[client]} connections open from this address "
                       f"(max_connections_per_address {s.max_connections_per_address})")
        elif (held := sum(min(n, s.max_connections_per_address)
                          for n in self._per_address.values())) > s.max_connections:  # each address up to its share
            refusal = ("connections_full", f"{held} connections open (max_connections {s.max_connections})")
        elif not self._connect_limit.allow(address):
            refusal = ("connect_rate", "this address opens connections faster than connect_rate allows")
        if refusal is not None:
            self._refusals.add(refusal[0], client, refusal[1])
            zap.send_multipart([version, request_id, b"400", refusal[1].encode(), b"", b""])
            return
        zap.send_multipart([version, request_id, b"200", b"OK", key.hex().encode(), b""])

    # ------------------------------------------------------------------ outbound: dialling, replies, liveness

    def _dial(self, address: str, *, hinted: bool = False) -> None:
        try:
            endpoint, key = parse_address(address, curve=self.settings.curve)
        except UsageError as exc:
            self._log.warning("zmq transport: not dialling %r: %s", address, exc)
            return
        if endpoint in self._dials or endpoint == self._endpoint:
            return
        s = self.settings
        if len(self._dials) >= s.max_dials:
            self._refusals.add("dials_full", endpoint, f"{s.max_dials} peers dialled already (max_dials)")
            return
        if hinted and sum(p.node_id is None for p in self._dials.values()) >= s.max_pending_dials:
            self._refusals.add("dials_pending_full", endpoint,
                               f"{s.max_pending_dials} learnt addresses have not answered yet (max_pending_dials)")
            return
        assert self._ctx is not None
        peer = _Peer(address, endpoint, key, self._dealer(endpoint, key), hinted)
        self._dials[endpoint] = peer
        self._socks[peer.sock] = peer
        self._poller.register(peer.sock, zmq.POLLIN)
        self._hello(peer)

    def _dealer(self, endpoint: str, key: bytes | None) -> zmq.Socket:
        """A DEALER connected to ``endpoint``, a CurveZMQ client of ``key`` when given."""
        assert self._ctx is not None
        sock = self._socket(self._ctx, zmq.DEALER)
        sock.routing_id = b"g" + os.urandom(15)
        sock.reconnect_ivl = 100
        sock.reconnect_ivl_max = RECONNECT_MAX_MS
        sock.connect_timeout = CONNECT_TIMEOUT_MS
        self._liveness(sock)
        if key is not None and self._curve is not None:
            sock.curve_serverkey = z85.encode(key)
            sock.curve_publickey = z85.encode(self._curve.public)
            sock.curve_secretkey = z85.encode(self._curve.secret)
        sock.connect(endpoint)
        return sock

    def _liveness(self, sock: zmq.Socket) -> None:
        """ZMTP heartbeats and TCP keepalive, so a connection lost without a FIN (a cut link) is closed and redone.

        Without them TCP keeps retransmitting into the dead link with a growing back-off, and a
        healed link is used again only when the next retransmission happens to get through.
        """
        s = self.settings
        sock.heartbeat_ivl = int(s.heartbeat_s * 1000)
        sock.heartbeat_timeout = int(s.down_after_s * 1000)
        sock.heartbeat_ttl = int(s.down_after_s * 1000)
        sock.handshake_ivl = int(s.down_after_s * 1000)  # a handshake stalled by a cut is abandoned too
        sock.tcp_keepalive = 1
        sock.tcp_keepalive_idle = max(1, round(s.down_after_s))
        sock.tcp_keepalive_intvl = max(1, round(s.heartbeat_s))
        sock.tcp_keepalive_cnt = 3

    def _redial(self, peer: _Peer) -> None:
        """Replace a down peer's socket with a fresh connection (what it queued is dropped; requests retry)."""
        self._socks.pop(peer.sock, None)
        self._poller.unregister(peer.sock)
        peer.sock.close(linger=0)
        peer.sock = self._dealer(peer.endpoint, peer.key)
        peer.dialled_at = time.monotonic()
        self._socks[peer.sock] = peer
        self._poller.register(peer.sock, zmq.POLLIN | (zmq.POLLOUT if peer.backlog else 0))
        self._counts["redials"] += 1

    def _drop(self, peer: _Peer) -> None:
        """Forget a dial: ourselves, a second route to a known peer, an off-list peer or a dead hint."""
        self._dials.pop(peer.endpoint, None)
        self._socks.pop(peer.sock, None)
        self._poller.unregister(peer.sock)
        peer.sock.close(linger=0)

    def _internal_request(self, peer: _Peer, kind: str, body: bytes) -> None:
        corr = next(self._ids)
        head = self._head(wire.REQUEST, corr, kind, body,
                          sign=kind == wire.HELLO or not self.channel_bound(peer.node_id or ""))
        self._internal[corr] = (kind, peer, time.monotonic())
        self._send(peer, [head, body], deadline=None)

    def _hello(self, peer: _Peer) -> None:
        peer.hello_at = time.monotonic()
        self._internal_request(peer, wire.HELLO, self._hello_body())

    def _hello_body(self) -> bytes:
        return msgpack.packb([codec.encode(self._record), self._hints()], use_bin_type=True)

    def _hints(self) -> list[list[str]]:
        known = [[nid, p.address] for nid, p in self._peers.items() if p.state == "up"]
        return random.sample(known, _MAX_HINTS) if len(known) > _MAX_HINTS else known

    def _allowed(self, node_id: str) -> bool:
        """True unless the allow-list mode is on and ``node_id`` is not on it."""
        return self.settings.auth != "allowlist" or node_id in self.settings.allowlist

    def _read_hello(self, env: Envelope) -> tuple[NodeRecord, list[str]]:
        try:
            record_bytes, hints = msgpack.unpackb(env.body, raw=False, max_array_len=_MAX_HINTS + 2)
            record = codec.decode(record_bytes, NodeRecord, max_bytes=_MAX_RECORD_BYTES)
        except (CodecError, ValueError, TypeError, msgpack.UnpackException):
            raise wire.Refused("bad_record", "hello does not hold a valid NodeRecord") from None
        if record.node_id != env.sender:
            raise wire.Refused("bad_record", "the NodeRecord is not the sender's")
        return record, self._read_hints(hints)

    def _read_hints(self, hints: object) -> list[str]:
        if not isinstance(hints, list):
            raise wire.Refused("bad_record", "peer hints are not a list")
        me = self._identity.node_id
        return [h[1] for h in hints[:_MAX_HINTS]
                if isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h)
                and h[0] != me and h[0] not in self._peers and self._allowed(h[0])]

    def _learn(self, record: NodeRecord, hints: list[str]) -> None:
        """Take a peer's record (dialling it back when new) and the peers it knows (peer exchange)."""
        peer = self._peers.get(record.node_id)
        if peer is not None:
            if peer.record is None or record.updated_at > peer.record.updated_at:  # an older one never rolls back
                moved = peer.record is not None and _dial_of(record) != _dial_of(peer.record)
                peer.record = record
                if moved:
                    self._follow(peer, record)
        elif record.addresses:  # a dial-back is learnt, not configured: given up on if it never answers
            key = record.channel_keys().get("curve") if self.settings.curve else None
            self._dial(format_address(record.addresses[0], key), hinted=True)
        for address in hints:
            self._dial(address, hinted=True)

    def _follow(self, peer: _Peer, record: NodeRecord) -> None:
        """Dial ``peer`` where its newer ``record`` says it moved (another port and/or Curve key)."""
        if not record.addresses:
            return
        key = record.channel_keys().get("curve") if self.settings.curve else None
        address = format_address(record.addresses[0], key)
        try:
            endpoint, key = parse_address(address, curve=self.settings.curve)
        except UsageError as exc:
            self._log.warning("zmq transport: not following peer %s to %r: %s", (peer.node_id or "")[:12], address, exc)
            return
        pending = self._dials.get(endpoint)
        if pending is not None and pending is not peer:
            self._drop(pending)  # a dial of the new address that has not answered yet
        self._dials.pop(peer.endpoint, None)
        peer.address, peer.endpoint, peer.key, peer.binds_us = address, endpoint, key, False
        self._dials[endpoint] = peer
        self._redial(peer)
        self._log.info("peer %s moved to %s: dialling it there", (peer.node_id or "")[:12], endpoint)

    def _drain_dealer(self, peer: _Peer) -> None:
        for _ in range(_DRAIN):
            if peer.sock.closed:
                return
            try:
                frames = [frame.bytes for frame in wire.recv(peer.sock)]
            except zmq.Again:
                return
            self._counts["received"] += 1
            try:
                self._on_reply(peer, frames)
            except wire.Refused as refused:
                self._refusals.add(refused.reason, peer.node_id or peer.endpoint, str(refused))
            except Refused:
                pass  # the kernel's gate refused it, and counted and logged it

    def _on_reply(self, peer: _Peer, frames: list[bytes]) -> None:
        mtype, corr, env = wire.parse(frames, self.settings.max_message_bytes)
        if mtype not in (wire.REPLY, wire.ERROR):
            raise wire.Refused("unexpected", f"message type {mtype} on a dialled socket")
        if not self._allowed(env.sender):
            raise wire.Refused("not_allowed", f"node {env.sender[:12]} is not on the allow-list")
        self._handler.authenticate(env, _curve_channel(peer.key) if peer.key else None)  # type: ignore[union-attr]
        if peer.node_id is not None and env.sender != peer.node_id:
            raise wire.Refused("wrong_sender", f"{env.sender[:12]} answered for {peer.node_id[:12]}")
        internal = self._internal.get(corr)
        if internal is not None and internal[1] is not peer:  # answered on another dial's socket: left in flight
            raise wire.Refused("wrong_sender", f"{env.sender[:12]} answered, on the socket of {peer.endpoint}, "
                               f"a {internal[0]} sent to {internal[1].endpoint}")
        if internal is not None:
            del self._internal[corr]
            self._on_internal_reply(peer, internal, mtype, env)
            return
        waiter = self._waiters.get(corr)
        if waiter is None:
            self._counts["late_replies"] += 1
            return
        if env.sender != waiter.peer_id or peer.node_id != waiter.peer_id:  # the reply comes on the asked peer's socket
            raise wire.Refused("wrong_sender", f"{env.sender[:12]} answered, on the socket of "
                               f"{(peer.node_id or peer.endpoint)[:12]}, a request sent to {waiter.peer_id[:12]}")
        self._alive(peer)
        if mtype == wire.ERROR:
            waiter.error = env.body.decode("utf-8", "replace")[:1000]
        else:
            waiter.body = env.body
        waiter.event.set()

    def _on_internal_reply(self, peer: _Peer, sent: tuple[str, _Peer, float], mtype: int, env: Envelope) -> None:
        kind, _, sent_at = sent
        if mtype == wire.ERROR:
            self._counts["refused_by_peer"] += 1
            self._log.warning("zmq transport: peer at %s refused %s: %s", peer.endpoint, kind,
                              env.body.decode("utf-8", "replace")[:200])
            return
        if kind == wire.HELLO:
            record, hints = self._read_hello(env)
            if self.settings.curve and record.channel_keys().get("curve") != peer.key:
                raise wire.Refused("bad_record", "record's curve key is not the one dialled")
            if record.node_id == self._identity.node_id:
                self._drop(peer)  # we dialled ourselves
                return
            if not self._allowed(record.node_id):  # e.g. learnt by peer exchange: never send it work
                self._drop(peer)
                raise wire.Refused("not_allowed", f"node {record.node_id[:12]} is not on the allow-list")
            known = self._peers.get(record.node_id)
            if known is not None and known is not peer:
                self._drop(peer)  # a second address of a known peer (followed when its newer record moved there)
                self._learn(record, hints)
                return
            peer.node_id, peer.record = record.node_id, record
            self._peers[record.node_id] = peer
            self._alive(peer)
            self._learn(record, hints)
        elif kind == wire.PING:
            try:
                known_us, hints, *binds = msgpack.unpackb(env.body, raw=False, max_array_len=_MAX_HINTS + 2)
            except (ValueError, TypeError, msgpack.UnpackException):
                raise wire.Refused("bad_record", "ping reply is malformed") from None
            peer.binds_us = bool(known_us) and binds[:1] == [True]  # an older peer says nothing: keep signing
            peer.rtt_s = time.monotonic() - sent_at
            self._alive(peer)
            if not known_us:
                self._hello(peer)  # the peer restarted and forgot us
            for address in self._read_hints(hints):
                self._dial(address, hinted=True)

    def _alive(self, peer: _Peer) -> None:
        peer.last_seen = time.time()
        if peer.state != "up" and peer.node_id is not None:
            peer.state = "up"
            self._changed(peer)

    def _changed(self, peer: _Peer) -> None:
        self._log.info("peer %s is %s (%s)", (peer.node_id or "")[:12], peer.state, peer.endpoint)
        self._submit(self._handler.on_peer, peer.info())  # type: ignore[union-attr]

    def _beat(self) -> None:
        """Ping every identified peer, mark silent ones down, re-send hellos."""
        now, mono = time.time(), time.monotonic()
        window = self.settings.down_after_s
        for peer in list(self._dials.values()):
            if peer.node_id is None:
                if peer.hinted and mono - peer.dialled_at > HINT_PATIENCE * window:
                    self._drop(peer)  # a peer-exchange address that never answered: free its slot
                    self._counts["hints_dropped"] += 1
                elif mono - peer.hello_at >= window:
                    self._hello(peer)
                continue
            if peer.state == "up" and now - peer.last_seen > window:
                peer.state, peer.rtt_s, peer.binds_us = "down", None, False
                self._changed(peer)
            if peer.state == "down" and mono - peer.dialled_at > window:
                self._redial(peer)  # once per window while down: a fresh connect, not TCP's back-off
            self._internal_request(peer, wire.PING, b"")
        cutoff = mono - 2 * window
        self._internal = {c: sent for c, sent in self._internal.items() if sent[2] > cutoff}


def _dial_of(record: NodeRecord) -> tuple[str | None, bytes | None]:
    """Where ``record`` says to dial its node: its first address and its Curve key."""
    return (record.addresses[0] if record.addresses else None), record.channel_keys().get("curve")


def _peer_address(fd: int) -> str:
    """The client IP address of the accepted connection ``fd`` ("" when it cannot be read, e.g. closed already).

    Read from a duplicate of the descriptor, closed at once; ZeroMQ's own is left alone.
    """
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            peer = sock.getpeername()
    except OSError:
        return ""
    return peer[0] if isinstance(peer, tuple) else ""


@functools.lru_cache(maxsize=1024)
def _curve_channel(key: bytes) -> Channel:
    """The Channel of a CurveZMQ client key, made once per key (not once per message)."""
    return Channel("curve", key)


def _client_key(frame: zmq.Frame) -> bytes:
    """The CurveZMQ key of the connection a message came on (the ZAP User-Id), or b"" when unknown."""
    try:
        user = frame.get("User-Id")  # a message property: a string
        return bytes.fromhex(user) if isinstance(user, str) else b""
    except (zmq.ZMQError, ValueError):
        return b""
