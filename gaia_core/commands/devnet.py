"""``gaia devnet up|down|status``: N real nodes on 127.0.0.1 for development and the demo."""

from __future__ import annotations

from pathlib import Path

import click

from gaia_core import devnet as devnet_mod
from gaia_core.console import print_json, print_table, short_id
from gaia_core.state import State


def _directory(state: State, directory: str | None) -> Path:
    return Path(directory).resolve() if directory else state.home.root / "devnet"


_dir_option = click.option("--dir", "directory", type=click.Path(file_okay=False),
                           help="Where the nodes' homes live (default: <home>/devnet).")


@click.group()
def devnet() -> None:
    """A local network of real node processes on 127.0.0.1 (each with its own home, keys and port)."""


@devnet.command()
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 16), help="How many nodes.")
@click.option("--cores", default=1, show_default=True, type=click.IntRange(min=1), help="Cores each node offers.")
@_dir_option
@click.pass_obj
def up(state: State, nodes: int, cores: int, directory: str | None) -> None:
    """Start the nodes, CurveZMQ on, each bootstrapped to the first; wait until they see each other."""
    where = _directory(state, directory)
    started = devnet_mod.up(where, nodes, cores=cores, plugins=state.plugin_list)  # stops its nodes on failure
    try:
        devnet_mod.wait_for_peers(where, nodes=nodes)
    except BaseException:  # Ctrl-C, or nodes that do not meet: leave nothing running
        click.echo(f"stopped the {devnet_mod.down(where)} node(s) it had started", err=True)
        raise
    for info in started:
        click.echo(f"{info['name']}  {info['node_id'][:16]}  {info['address']}")
    click.echo(f"devnet of {nodes} up in {where}; stop it with `gaia devnet down`")


@devnet.command()
@_dir_option
@click.pass_obj
def down(state: State, directory: str | None) -> None:
    """Stop every node of the devnet."""
    count = devnet_mod.down(_directory(state, directory))
    click.echo(f"stopped {count} node(s)")


@devnet.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_dir_option
@click.pass_obj
def status(state: State, as_json: bool, directory: str | None) -> None:
    """Show each devnet node: up or down, peers, queue and tasks."""
    rows = [devnet_mod.status(home) for home in devnet_mod.homes(_directory(state, directory))]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no devnet here; start one with `gaia devnet up`")
        return
    print_table(None, ["node", "state", "id", "address", "peers up", "queued", "tasks"],
                [(r.get("name", r.get("home")), r["state"], short_id(r.get("node_id", "")),
                  r.get("address", "").partition("#")[0].removeprefix("tcp://"),
                  r.get("peers", {}).get("up"), r.get("queue", {}).get("depth"),
                  ", ".join(f"{k} {v:.0f}" for k, v in r.get("tasks", {}).items())) for r in rows],
                flex=("node", "address", "tasks"))
