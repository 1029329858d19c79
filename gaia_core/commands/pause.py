"""``gaia pause`` and ``gaia resume``: the contributor's switch, as BOINC's suspend and resume."""

from __future__ import annotations

import click

from gaia_core.commands.node import call
from gaia_core.state import State


@click.command()
@click.pass_obj
def pause(state: State) -> None:
    """Pause the running node: it takes and starts no task (running ones finish) until `gaia resume`."""
    call(state, "pause")
    click.echo("paused: no new task is taken or started (running ones finish); `gaia resume` to go on. "
               "It stays paused across restarts.")


@click.command()
@click.pass_obj
def resume(state: State) -> None:
    """Resume a paused node: it takes and runs tasks again."""
    call(state, "resume")
    click.echo("resumed: the node takes and runs tasks again")
