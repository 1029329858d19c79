from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import attrs
import pytest

from gaia_core.config import Config, Home
from gaia_core.identity import Identity
from gaia_core.model import NodeRecord
from gaia_core.roles import NodeContext

from gaia_comm_zmq.transport import ZmqTransport

pytest_plugins = ["gaia_core.testing.fixtures"]

Build = Callable[..., "tuple[ZmqTransport, NodeRecord]"]


@pytest.fixture
def build(tmp_path: Path) -> Iterator[Build]:
    """Make unstarted transports on a free loopback port, each in its own home; all stopped at the end.

    Keyword arguments override ``[network]`` keys (e.g. ``security="insecure"``);
    ``identity=`` reuses an identity and ``own=`` adds ``[comm_zmq]`` keys.
    """
    made: list[ZmqTransport] = []
    counter = itertools.count()

    def make(identity: Identity | None = None, own: dict[str, Any] | None = None, **network: Any) -> tuple[ZmqTransport, NodeRecord]:
        identity = identity or Identity.generate()
        home = Home(tmp_path / f"node{next(counter)}")
        home.root.mkdir()
        config = Config()
        config = attrs.evolve(
            config, node=attrs.evolve(config.node, listen="tcp://127.0.0.1:*"),
            network=attrs.evolve(config.network, **{"heartbeat_s": 0.2, "down_after_s": 1.5, **network}),
            extra={"comm_zmq": {"retries": 1, **(own or {})}})
        transport = ZmqTransport(NodeContext(config=config, home=home, identity=identity,
                                             log=logging.getLogger("gaia.test")))
        made.append(transport)
        return transport, NodeRecord(node_id=identity.node_id, curve_key=identity.curve_public, name=home.root.name)

    yield make
    for transport in made:
        transport.stop()
