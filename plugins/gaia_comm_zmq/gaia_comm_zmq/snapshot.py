"""``<home>/peers.json``: the running transport's peer table, for ``gaia peers`` in another process.

The transport rewrites it atomically every heartbeat and removes it on stop;
a file older than a few heartbeats means the node is not running.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from gaia_core.config import Home
from gaia_core.errors import NodeError
from gaia_core.roles import PeerInfo

FILE = "peers.json"
#: Benchmark figures shown per peer (when its NodeRecord carries them).
SUMMARY_KEYS = ("cpu_gflops", "gflops", "cores", "ram_bytes", "gpu_gflops")


def path(home: Home) -> Path:
    """Where the transport of the node in ``home`` writes its peer table."""
    return home.root / FILE


def peer_row(info: PeerInfo) -> dict[str, Any]:
    """One peer as plain data: state, last seen, RTT, benchmark summary."""
    bench = dict(info.record.benchmark) if info.record else {}
    return {
        "node_id": info.node_id,
        "name": info.record.name if info.record else "",
        "address": info.address,
        "state": info.state,
        "last_seen": info.last_seen,
        "rtt_ms": None if info.rtt_s is None else round(info.rtt_s * 1000, 3),
        "load": info.record.load if info.record else None,
        "benchmark": {k: bench[k] for k in SUMMARY_KEYS if k in bench} or dict(list(bench.items())[:4]),
    }


def write(home: Home, data: dict[str, Any]) -> None:
    """Replace the peer table file atomically."""
    target = path(home)
    tmp = target.with_name(f".{FILE}.{os.getpid()}.{id(data)}.tmp")
    tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
    os.replace(tmp, target)


def read(home: Home) -> dict[str, Any]:
    """The peer table of the node running in ``home``; NodeError when none is running."""
    target = path(home)
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NodeError(f"no running node in {home.root} (no {FILE})", hint="start it with `gaia node`") from None
    except (OSError, ValueError) as exc:
        raise NodeError(f"cannot read {target}: {exc}", hint="is the node running? start it with `gaia node`") from None
    age = time.time() - float(data.get("updated_at", 0))
    if age > max(3 * float(data.get("heartbeat_s", 1.0)), 5.0):
        raise NodeError(f"the node in {home.root} last reported its peers {age:.0f}s ago; it is not running",
                        hint="start it with `gaia node`")
    return data
