"""``gaia dashboard``: serve a live web page of the running node on 127.0.0.1 (docs/dashboard.md)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from gaia_core.commands.params import Integer, Seconds
from gaia_core.control import ControlClient
from gaia_core.dashboard.logtail import LogTail
from gaia_core.dashboard.security import loopback
from gaia_core.dashboard.server import Dashboard
from gaia_core.state import State


def start(state: State, *, host: str, port: int, interval: float, actions: bool,
          logs: LogTail | None = None) -> Dashboard:
    """Start the dashboard of the node serving ``state.home`` and print its URL (with the token)."""
    if not loopback(host):
        click.echo(f"warning: the dashboard listens on {host}: anyone who can reach it there and learns the "
                   "token sees this node (plain HTTP, no TLS)", err=True)
    board = Dashboard(state.home, host=host, port=port, interval=interval, actions=actions, logs=logs)
    url = board.start()
    click.echo(f"dashboard: {url}")
    return board


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on (127.0.0.1: this machine only).")
@click.option("--port", type=Integer(0, 65535), default=0, show_default=True,
              help="Port to serve on (0: any free port; the URL printed says which).")
@click.option("--interval", type=Seconds(0.2, 60.0), default=1.0, show_default=True,
              help="Seconds between the page's updates (0.2 to 60).")
@click.option("--allow-actions", "actions", is_flag=True,
              help="Let the page cancel jobs (CSRF-protected); read-only otherwise.")
@click.pass_obj
def dashboard(state: State, host: str, port: int, interval: float, actions: bool) -> None:
    """Serve a live web page of the running node: status, charts, jobs, peers, rewards, log.

    Prints the page's URL with its secret token (as Jupyter does); stop with Ctrl-C.
    """
    with ControlClient(state.home, timeout=5.0) as client:  # one line and exit 8 when no node runs
        client.call("status")
    done = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    board = start(state, host=host, port=port, interval=interval, actions=actions)
    click.echo("Ctrl-C to stop")
    try:
        while not done.wait(0.5):
            pass
    finally:
        board.stop()
