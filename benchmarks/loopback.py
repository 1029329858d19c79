"""Loopback pairs the transport benchmarks share: raw pyzmq CURVE DEALER->ROUTER sockets (the baseline) and
gaia-comm-zmq transports listening on a free 127.0.0.1 port."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import zmq

from gaia_comm_zmq.transport import ZmqTransport
from gaia_core.config import Config, Home
from gaia_core.identity import Identity
from gaia_core.inbound import Gate, Handlers
from gaia_core.model import NodeRecord
from gaia_core.roles import NodeContext


def until(done: Callable[[], bool], timeout: float) -> None:
    """Wait until ``done()``; stop the benchmark if it takes longer than ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("the benchmark pair did not get ready in time")
        time.sleep(0.01)


def curve_pair() -> tuple[zmq.Context, zmq.Socket, zmq.Socket]:
    """A raw CURVE ROUTER on a free port and a DEALER connected to it, one message already through."""
    ctx = zmq.Context()
    server_pub, server_sec = zmq.curve_keypair()
    client_pub, client_sec = zmq.curve_keypair()
    router = ctx.socket(zmq.ROUTER)
    router.curve_server, router.curve_secretkey, router.curve_publickey = True, server_sec, server_pub
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = ctx.socket(zmq.DEALER)
    dealer.curve_serverkey, dealer.curve_publickey, dealer.curve_secretkey = server_pub, client_pub, client_sec
    dealer.connect(f"tcp://127.0.0.1:{port}")
    for sock in (router, dealer):
        sock.linger, sock.sndhwm, sock.rcvhwm = 0, 100_000, 100_000
    dealer.send(b"warm")
    router.recv_multipart()
    return ctx, router, dealer


def zmq_transport(root: Path, handler: Handlers, extra: Mapping[str, Mapping[str, Any]] | None = None,
                  ) -> tuple[ZmqTransport, str, str]:
    """A started transport of a fresh identity with its home at ``root``: (transport, its address, its node id)."""
    identity = Identity.generate()
    home = Home(root)
    home.root.mkdir(parents=True, exist_ok=True)
    base = Config()
    config = attrs.evolve(base, node=attrs.evolve(base.node, listen="tcp://127.0.0.1:*"), extra=extra or {})
    transport = ZmqTransport(NodeContext(config=config, home=home, identity=identity, log=logging.getLogger("bench")))
    address = transport.start(Gate(handler), NodeRecord(node_id=identity.node_id))
    return transport, address, identity.node_id
