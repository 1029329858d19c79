"""``gaia logs [-f]``: the background node's log (``<home>/node.log``), readable or as JSON lines."""

from __future__ import annotations

import click

from gaia_core import logs as logs_mod
from gaia_core.commands.params import Integer
from gaia_core.errors import NodeError
from gaia_core.state import State


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing lines as the node writes them (Ctrl-C stops).")
@click.option("-n", "--lines", "count", type=Integer(0, 100_000), default=50, show_default=True,
              help="How many of the last lines to print first.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON lines as the file holds them.")
@click.pass_obj
def logs(state: State, follow: bool, count: int, as_json: bool) -> None:
    """Show the log of the node run in the background for this home (`gaia node --detach`, devnet nodes)."""
    path = state.home.log_file
    if not path.is_file():
        raise NodeError(f"no log at {path}: no node has run in the background for home {state.home.root}",
                        hint="start one with `gaia node --detach`; a foreground node logs to its terminal")
    show = (lambda line: line) if as_json else logs_mod.render
    for line in logs_mod.tail(path, count):
        click.echo(show(line))
    if follow:
        for line in logs_mod.follow(path):
            click.echo(show(line))
