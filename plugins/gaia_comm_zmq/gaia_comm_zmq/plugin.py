"""Hook implementations: the ``zmq`` transport and the ``gaia peers`` command."""

from __future__ import annotations

from typing import Iterator

import click

from gaia_core import hookimpl
from gaia_core.roles import TransportSpec


@hookimpl
def gaia_transports() -> Iterator[TransportSpec]:
    """The ZeroMQ + CurveZMQ transport."""
    from gaia_comm_zmq.transport import ZmqTransport

    yield TransportSpec(name="zmq", factory=ZmqTransport)


@hookimpl
def gaia_register_commands(cli: click.Group) -> None:
    """Add ``gaia peers``."""
    from gaia_comm_zmq.commands import peers

    cli.add_command(peers)
