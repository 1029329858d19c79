"""Hook implementation: the ``zmq`` transport."""

from __future__ import annotations

from typing import Iterator

from gaia_core import hookimpl
from gaia_core.roles import TransportSpec


@hookimpl
def gaia_transports() -> Iterator[TransportSpec]:
    """The ZeroMQ + CurveZMQ transport."""
    from gaia_comm_zmq.transport import ZmqTransport

    yield TransportSpec(name="zmq", factory=ZmqTransport)

