"""The transport's settings: ``[network]`` and ``[node]`` from the kernel, ``[comm_zmq]`` of its own."""

from __future__ import annotations

import re
from typing import Any, Mapping

import attrs
from attrs import field, frozen, validators as v

from gaia_core.plugin_api import Config, ConfigError

SECTION = "comm_zmq"
_NODE_ID = re.compile(r"[0-9a-f]{64}\Z")


@frozen
class Settings:
    """Everything the transport reads from configuration, validated."""

    listen: str
    advertise: str = ""
    bootstrap: tuple[str, ...] = ()
    security: str = "curve"
    auth: str = "open"
    allowlist: frozenset[str] = frozenset()
    heartbeat_s: float = 1.0
    down_after_s: float = 5.0
    #: Attempts after the first when a request times out (each attempt gets timeout / attempts).
    retries: int = field(default=2, validator=[v.instance_of(int), v.ge(0), v.le(10)])
    #: Threads that call the handler (fixed pool; none are created per message).
    workers: int = field(default=4, validator=[v.instance_of(int), v.ge(1), v.le(256)])
    #: Largest message accepted (header + body); bigger ones are refused and counted.
    max_message_bytes: int = field(default=64 << 20, validator=[v.instance_of(int), v.gt(1024)])
    #: Bodies at least this large are sent zero-copy.
    copy_threshold: int = field(default=64 << 10, validator=[v.instance_of(int), v.ge(0)])
    #: Messages queued per peer for sending (requests, announcements) before backpressure.
    send_hwm: int = field(default=10_000, validator=[v.instance_of(int), v.ge(1)])
    #: Messages queued per peer on receipt before ZeroMQ stops reading from that peer.
    recv_hwm: int = field(default=10_000, validator=[v.instance_of(int), v.ge(1)])
    #: Replies queued per peer; high on purpose, since a dropped reply costs a retry.
    reply_hwm: int = field(default=100_000, validator=[v.instance_of(int), v.ge(1)])
    #: Connections open at once (accepted TCP connections; handshakes beyond it are refused, ``connections_full``).
    max_connections: int = field(default=512, validator=[v.instance_of(int), v.ge(1), v.le(100_000)])
    #: New connections accepted per client address: a burst, then a rate per second (``connect_rate``).
    connect_burst: int = field(default=32, validator=[v.instance_of(int), v.ge(1), v.le(100_000)])
    connect_rate: float = field(default=8.0, converter=float, validator=[v.gt(0), v.le(100_000)])
    #: Hellos accepted per connection: a burst, then a rate per second; the rest are refused (``hello_rate``).
    hello_burst: int = field(default=5, validator=[v.instance_of(int), v.ge(1), v.le(1000)])
    hello_rate: float = field(default=1.0, converter=float, validator=[v.gt(0), v.le(1000)])
    #: Announcements accepted per connection: a burst, then a rate per second (``announce_rate``).
    announce_burst: int = field(default=20, validator=[v.instance_of(int), v.ge(1), v.le(100_000)])
    announce_rate: float = field(default=5.0, converter=float, validator=[v.gt(0), v.le(100_000)])
    #: Largest announcement body; bigger ones are refused on arrival (``announce_oversized``).
    max_announce_bytes: int = field(default=64 << 10, validator=[v.instance_of(int), v.ge(1024), v.le(16 << 20)])
    #: Peers dialled at most (each is a socket; ZeroMQ allows 1,023 per node, the rest are kept for the node).
    max_dials: int = field(default=256, validator=[v.instance_of(int), v.ge(1), v.le(768)])
    #: Dials learnt from peers (dial-backs, peer exchange) that have not answered yet, at most.
    max_pending_dials: int = field(default=64, validator=[v.instance_of(int), v.ge(1), v.le(768)])

    @property
    def curve(self) -> bool:
        """True unless the node runs plaintext (``security = "insecure"``)."""
        return self.security == "curve"

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        """Read the node's configuration; ConfigError names a bad key."""
        net = config.network
        bad = [n for n in net.allowlist if not _NODE_ID.match(n)]
        if bad:
            raise ConfigError(f"[network] allowlist entry {bad[0]!r} is not a node id (64 lowercase hex)",
                              hint="list the node ids peers print at start or in `gaia peers`")
        if net.auth == "allowlist" and not net.allowlist:
            raise ConfigError("[network] auth = \"allowlist\" but the allowlist is empty",
                              hint="list the node ids allowed to talk to this node, or use auth = \"open\"")
        if net.down_after_s <= net.heartbeat_s:
            raise ConfigError(f"[network] down_after_s ({net.down_after_s}) must exceed heartbeat_s ({net.heartbeat_s})",
                              hint="a few heartbeats, e.g. heartbeat_s = 1, down_after_s = 5")
        own = _own(config.section(SECTION))
        try:
            return cls(listen=config.node.listen, advertise=config.node.advertise,
                       bootstrap=tuple(net.bootstrap), security=net.security, auth=net.auth,
                       allowlist=frozenset(net.allowlist), heartbeat_s=net.heartbeat_s,
                       down_after_s=net.down_after_s, **own)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[{SECTION}]: {exc}", hint="see the plugin README for the keys and their ranges") from None


def _own(section: Mapping[str, Any]) -> dict[str, Any]:
    known = {a.name for a in attrs.fields(Settings)} - _FROM_KERNEL
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"[{SECTION}] has unknown key {unknown[0]!r}", hint=f"known keys: {', '.join(sorted(known))}")
    return dict(section)


#: Settings read from the kernel's ``[node]`` and ``[network]`` sections, not from ``[comm_zmq]``.
_FROM_KERNEL = {"listen", "advertise", "bootstrap", "security", "auth", "allowlist", "heartbeat_s", "down_after_s"}
