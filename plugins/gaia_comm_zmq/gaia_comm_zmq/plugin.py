"""Hook implementation: the ``zmq`` transport."""

from __future__ import annotations

from collections.abc import Iterator

from gaia_core.plugin_api import TransportSpec, hookimpl


@hookimpl
def gaia_transports() -> Iterator[TransportSpec]:
    """The ZeroMQ + CurveZMQ transport."""
    from gaia_comm_zmq.transport import ZmqTransport

    yield TransportSpec(name="zmq", factory=ZmqTransport)

