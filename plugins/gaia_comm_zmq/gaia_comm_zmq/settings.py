"""The transport's settings: ``[comm_zmq]`` of its own, plus addresses and liveness from ``[node]``/``[network]``.

``security``, ``auth`` and ``allowlist`` are this plugin's: set them in ``[comm_zmq]``. A key absent
there is still read from ``[network]``, where older configurations have it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

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
    security: str = field(default="curve", validator=v.in_({"curve", "insecure"}))
    auth: str = field(default="open", validator=v.in_({"open", "allowlist"}))
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
    #: Replies queued per peer (a count; ``max_reply_bytes_per_peer`` bounds their bytes).
    reply_hwm: int = field(default=10_000, validator=[v.instance_of(int), v.ge(1)])
    #: Bytes of answers that one peer (one connection) has not read yet, and all peers together; past
    #: them an answer is dropped (``reply_unread``, ``replies_full``) and that peer's next requests are
    #: refused as busy until it has read every answer. An answer to a peer that holds none goes whatever its size.
    max_reply_bytes_per_peer: int = field(default=32 << 20, validator=[v.instance_of(int), v.ge(1 << 20)])
    max_reply_bytes: int = field(default=256 << 20, validator=[v.instance_of(int), v.ge(1 << 20)])
    #: Requests waiting for (or in) a handler thread, per peer (one connection) and in all, by count and
    #: bytes; past them a request is answered at once "busy ... retry after" (``busy_peer``, ``busy``).
    #: A request from a peer that has none waiting is taken whatever its size.
    max_pending_requests_per_peer: int = field(default=32, validator=[v.instance_of(int), v.ge(1)])
    max_pending_requests: int = field(default=1024, validator=[v.instance_of(int), v.ge(1)])
    max_pending_request_bytes_per_peer: int = field(default=64 << 20, validator=[v.instance_of(int), v.ge(1 << 10)])
    max_pending_request_bytes: int = field(default=256 << 20, validator=[v.instance_of(int), v.ge(1 << 10)])
    #: Connections open at once (accepted TCP connections; handshakes beyond it are refused, ``connections_full``).
    max_connections: int = field(default=512, validator=[v.instance_of(int), v.ge(1), v.le(100_000)])
    #: Connections open at once from one client address (``connections_per_address``); an address counts
    #: toward ``max_connections`` with at most this many, so one address cannot fill it for everyone.
    max_connections_per_address: int = field(default=64, validator=[v.instance_of(int), v.ge(1), v.le(100_000)])
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
        own = _own(config.section(SECTION))
        where = {key: SECTION if key in own else "network" for key in _OWN_OR_LEGACY}
        for key in _OWN_OR_LEGACY:  # the plugin's own table first; [network] where older configurations keep them
            own.setdefault(key, getattr(net, key, attrs.fields_dict(Settings)[key].default))
        allowlist = own["allowlist"]
        if not isinstance(allowlist, (list, tuple)) or not all(isinstance(n, str) for n in allowlist):
            raise ConfigError(f"[{where['allowlist']}] allowlist must be a list of node ids")
        bad = [n for n in allowlist if not _NODE_ID.match(n)]
        if bad:
            raise ConfigError(f"[{where['allowlist']}] allowlist entry {bad[0]!r} is not a node id (64 lowercase hex)",
                              hint="list the node ids peers print at start or in `gaia peers`")
        own["allowlist"] = frozenset(allowlist)
        if own["auth"] == "allowlist" and not allowlist:
            raise ConfigError(f"[{where['auth']}] auth = \"allowlist\" but the allowlist is empty",
                              hint="list the node ids allowed to talk to this node, or use auth = \"open\"")
        if net.down_after_s <= net.heartbeat_s:
            raise ConfigError(f"[network] down_after_s ({net.down_after_s}) must exceed "
                              f"heartbeat_s ({net.heartbeat_s})",
                              hint="a few heartbeats, e.g. heartbeat_s = 1, down_after_s = 5")
        try:
            return cls(listen=config.node.listen, advertise=config.node.advertise, bootstrap=tuple(net.bootstrap),
                       heartbeat_s=net.heartbeat_s, down_after_s=net.down_after_s, **own)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[{SECTION}]: {exc}",
                              hint="see the plugin README for the keys and their ranges") from None


def _own(section: Mapping[str, Any]) -> dict[str, Any]:
    known = {a.name for a in attrs.fields(Settings)} - _FROM_KERNEL
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"[{SECTION}] has unknown key {unknown[0]!r}", hint=f"known keys: {', '.join(sorted(known))}")
    return dict(section)


#: Settings read from the kernel's ``[node]`` and ``[network]`` sections, not from ``[comm_zmq]``.
_FROM_KERNEL = {"listen", "advertise", "bootstrap", "heartbeat_s", "down_after_s"}
#: This plugin's keys that older configurations keep in ``[network]``.
_OWN_OR_LEGACY = ("security", "auth", "allowlist")
