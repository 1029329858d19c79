"""Real node processes on 127.0.0.1: discovery through one bootstrap, a killed peer goes down, comes back."""

from __future__ import annotations

import time


def test_three_nodes_meet_lose_and_regain_a_peer(spawn) -> None:
    a = spawn("a")
    b = spawn("b", bootstrap=[a.address])
    c = spawn("c", bootstrap=[a.address])
    nodes = (a, b, c)
    for me in nodes:
        for other in nodes:
            if other is not me:
                me.wait_peer(other.node_id, "up")  # b and c learn of each other through a

    c_listen = c.address.partition("#")[0]
    marks = {n.node_id: len(n.seen) for n in (a, b)}
    c.kill()
    killed_at = time.monotonic()
    for me in (a, b):
        me.wait_peer(c.node_id, "down", after=marks[me.node_id])
    assert time.monotonic() - killed_at < c.down_after_s + 10  # detected within the window (+ loaded-CI slack)

    marks = {n.node_id: len(n.seen) for n in (a, b)}
    c2 = spawn("c", listen=c_listen, bootstrap=[a.address])  # same home: same node id, same port
    assert c2.node_id == c.node_id
    for me in (a, b):
        me.wait_peer(c.node_id, "up", after=marks[me.node_id])
    c2.wait_peer(a.node_id, "up")
    c2.wait_peer(b.node_id, "up")


def test_sigterm_stops_cleanly(spawn) -> None:
    a = spawn("a")
    a.popen.terminate()
    a.wait(lambda e: e["event"] == "stopped", "the stopped event")
    assert a.popen.wait(timeout=10) == 0
