from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import zmq
from zmq.utils import z85

from gaia_comm_zmq import wire
from gaia_comm_zmq.keys import CurveKey
from gaia_comm_zmq.transport import ZmqTransport
from gaia_core.config import Config, Home
from gaia_core.envelope import seal
from gaia_core.identity import Identity
from gaia_core.model import NodeRecord
from gaia_core.roles import NodeContext

pytest_plugins = ["gaia_core.testing.fixtures"]

Build = Callable[..., "tuple[ZmqTransport, NodeRecord]"]
#: Liveness settings of the peer processes (fast, so tests see up and down quickly).
HEARTBEAT_S, DOWN_AFTER_S = 0.2, 1.5
WAIT_S = 30.0


@pytest.fixture
def build(tmp_path: Path) -> Iterator[Build]:
    """Make unstarted transports on a free loopback port, each in its own home; all stopped at the end.

    Keyword arguments override ``[network]`` keys (e.g. ``security="insecure"``);
    ``identity=`` reuses an identity, ``own=`` adds ``[comm_zmq]`` keys and ``listen=`` sets the endpoint.
    """
    made: list[ZmqTransport] = []
    counter = itertools.count()

    def make(identity: Identity | None = None, own: dict[str, Any] | None = None, listen: str = "tcp://127.0.0.1:*",
             home: Home | None = None, **network: Any) -> tuple[ZmqTransport, NodeRecord]:
        identity = identity or Identity.generate()
        if home is None:
            home = Home(tmp_path / f"node{next(counter)}")
            home.root.mkdir()
        config = Config()
        config = attrs.evolve(
            config, node=attrs.evolve(config.node, listen=listen),
            network=attrs.evolve(config.network, **{"heartbeat_s": 0.2, "down_after_s": 1.5, **network}),
            extra={"comm_zmq": {"retries": 1, **(own or {})}})
        transport = ZmqTransport(NodeContext(config=config, home=home, identity=identity,
                                             log=logging.getLogger("gaia.test")))
        made.append(transport)
        return transport, NodeRecord(node_id=identity.node_id, name=home.root.name)

    yield make
    for transport in made:
        transport.stop()


class Proc:
    """One ``python -m gaia_comm_zmq.peer`` process and the JSON events it prints."""

    def __init__(self, home: Path, listen: str, bootstrap: list[str], prefix: list[str]) -> None:
        args = [*prefix, sys.executable, "-m", "gaia_comm_zmq.peer", "--home", str(home), "--listen", listen,
                "--heartbeat", str(HEARTBEAT_S), "--down-after", str(DOWN_AFTER_S)]
        for address in bootstrap:
            args += ["--bootstrap", address]
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.down_after_s = DOWN_AFTER_S
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
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    procs: list[Proc] = []

    def start(name: str, listen: str = "tcp://127.0.0.1:*", bootstrap: list[str] = (), prefix: list[str] = ()) -> Proc:
        """Start a peer process in home ``name``; ``prefix`` runs it under a wrapper, e.g. ``ip netns exec NS``."""
        proc = Proc(tmp_path / name, listen, list(bootstrap), list(prefix))
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


class RawPeer:
    """A bare CurveZMQ DEALER speaking to a transport's ROUTER, to send anything at all."""

    def __init__(self, address: str, identity: Identity) -> None:
        endpoint, _, key = address.partition("#")
        self.identity = identity
        self.curve = CurveKey.generate()  # its connection's key, as a real node's transport keeps one
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.curve_serverkey = z85.encode(bytes.fromhex(key))
        self.sock.curve_publickey = z85.encode(self.curve.public)
        self.sock.curve_secretkey = z85.encode(self.curve.secret)
        self.sock.connect(endpoint)

    def send_request(self, kind: str, body: bytes, **seal_kw) -> bytes:
        env = seal(self.identity, kind, body, **seal_kw)
        frames = [wire.header(wire.REQUEST, 7, env), env.body]
        self.sock.send_multipart(frames)
        return frames[0]

    def close(self) -> None:
        self.ctx.destroy(linger=0)


@pytest.fixture
def dial_raw() -> Iterator[Callable[..., RawPeer]]:
    """Connect bare DEALERs (``dial_raw(address, identity=None)``) to a transport; all closed at the end."""
    peers: list[RawPeer] = []

    def dial(address: str, identity: Identity | None = None) -> RawPeer:
        peers.append(RawPeer(address, identity or Identity.generate()))
        return peers[-1]

    yield dial
    for peer in peers:
        peer.close()
