"""Recovery: a link that is really cut (a veth pair whose host end goes down) is used again soon after it heals.

The peer runs in a network namespace the test makes (root and ``ip netns`` needed; skipped otherwise).
While the link is down TCP backs off its retransmissions (seconds to minutes); ZeroMQ heartbeats,
a bounded connect timeout, a capped reconnect interval and re-dialling a peer marked down let the
transport see the peer up, and use it, within 5 s of the link coming back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from gaia_core.inbound import Gate
from gaia_core.testing.conformance.transport import RecordingHandler, wait_for

#: How long the link stays cut: long enough for TCP's retransmission back-off to reach several seconds.
CUT_S = 12.0
#: The promise (issue #12): a healed link is seen up and used again within this many seconds.
RECOVERY_S = 5.0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _netns_usable() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"gaia-probe-{os.getpid()}"
    try:
        _ip("netns", "add", name)
        _ip("netns", "del", name)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


pytestmark = pytest.mark.skipif(not _netns_usable(), reason="needs root and `ip netns` to cut a real link")


@pytest.fixture
def link() -> Iterator[dict[str, str]]:
    """A namespace joined to this one by a veth pair: host end 10.231.N.1, namespace end 10.231.N.2."""
    tag = os.getpid() % 100_000
    net = f"10.231.{tag % 250}"
    names = {"ns": f"gaia-rec-{tag}", "host": f"grec{tag}h", "peer": f"grec{tag}p",
             "host_ip": f"{net}.1", "peer_ip": f"{net}.2"}
    _ip("netns", "add", names["ns"])
    try:
        _ip("link", "add", names["host"], "type", "veth", "peer", "name", names["peer"])
        _ip("link", "set", names["peer"], "netns", names["ns"])
        _ip("addr", "add", f"{names['host_ip']}/30", "dev", names["host"])
        _ip("link", "set", names["host"], "up")
        _ip("-n", names["ns"], "addr", "add", f"{names['peer_ip']}/30", "dev", names["peer"])
        _ip("-n", names["ns"], "link", "set", names["peer"], "up")
        _ip("-n", names["ns"], "link", "set", "lo", "up")
        yield names
    finally:
        subprocess.run(["ip", "link", "del", names["host"]], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", names["ns"]], capture_output=True, timeout=10)


def _state(transport, node_id: str) -> str | None:
    return next((p.state for p in transport.peers() if p.node_id == node_id), None)


def test_a_healed_link_is_seen_up_and_used_within_5_seconds(build, spawn, link) -> None:
    a, a_rec = build(listen=f"tcp://{link['host_ip']}:*", heartbeat_s=1.0, down_after_s=3.0)
    address = a.start(Gate(RecordingHandler()), a_rec)
    b = spawn("b", listen=f"tcp://{link['peer_ip']}:*", bootstrap=[address], prefix=["ip", "netns", "exec", link["ns"]])
    wait_for(lambda: _state(a, b.node_id) == "up", "the peer in the namespace to come up")
    assert a.request(b.node_id, "echo", b"before", timeout=5) == b"before"

    _ip("link", "set", link["host"], "down")  # the cut: packets are lost both ways, nothing is closed
    wait_for(lambda: _state(a, b.node_id) == "down", "the cut peer to be marked down", timeout=15)
    mark = len(b.seen)
    time.sleep(CUT_S)
    assert _state(a, b.node_id) == "down", "the peer came back while the link was still cut"
    _ip("link", "set", link["host"], "up")
    healed = time.monotonic()

    wait_for(lambda: _state(a, b.node_id) == "up", "the peer to come back up after the heal", timeout=60)
    assert a.request(b.node_id, "echo", b"after", timeout=30) == b"after"
    seen_up_s = time.monotonic() - healed
    b.wait_peer(a_rec.node_id, "up", after=mark)  # and the other side sees us again
    both_s = time.monotonic() - healed
    print(f"recovery after a {CUT_S:.0f} s cut: used again after {seen_up_s:.1f} s, both sides up after {both_s:.1f} s")
    assert seen_up_s < RECOVERY_S and both_s < RECOVERY_S
