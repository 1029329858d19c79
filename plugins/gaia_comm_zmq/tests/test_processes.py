"""Real node processes on 127.0.0.1: discovery through one bootstrap, a killed peer goes down, comes back."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

HEARTBEAT_S, DOWN_AFTER_S = 0.2, 1.5
WAIT_S = 30.0


class Proc:
    """One ``python -m gaia_comm_zmq.peer`` process and the JSON events it prints."""

    def __init__(self, home: Path, listen: str, bootstrap: list[str]) -> None:
        args = [sys.executable, "-m", "gaia_comm_zmq.peer", "--home", str(home), "--listen", listen,
                "--heartbeat", str(HEARTBEAT_S), "--down-after", str(DOWN_AFTER_S)]
        for address in bootstrap:
            args += ["--bootstrap", address]
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        started = self.wait(lambda e: e["event"] == "started", "the process to start")
        self.node_id, self.address = started["node_id"], started["address"]

    def _read(self) -> None:
        for line in self.popen.stdout:  # ends when the process exits
            self.events.put(json.loads(line))

    def wait(self, match, what: str, timeout: float = WAIT_S, after: int = 0) -> dict[str, Any]:
        """The first event from index ``after`` on that ``match``es, waiting up to ``timeout``."""
        for event in self.seen[after:]:
            if match(event):
                return event
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self.seen.append(event)
            if match(event):
                return event
        pytest.fail(f"timed out after {timeout:g}s waiting for {what}")

    def wait_peer(self, node_id: str, state: str, after: int = 0) -> None:
        self.wait(lambda e: e["event"] == "peer" and e["node_id"] == node_id and e["state"] == state,
                  f"peer {node_id[:12]} {state}", after=after)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    procs: list[Proc] = []

    def start(name: str, listen: str = "tcp://127.0.0.1:*", bootstrap: list[str] = ()) -> Proc:
        proc = Proc(tmp_path / name, listen, list(bootstrap))
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


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
    assert time.monotonic() - killed_at < DOWN_AFTER_S + 10  # detected within the window (+ loaded-CI slack)

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
