"""``gaia peers``: the running node's peers with state, last seen, RTT and benchmark summary."""

from __future__ import annotations

import time

import click

from gaia_core.console import print_json, print_table
from gaia_core.state import State

from gaia_comm_zmq import snapshot


@click.command("peers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def peers(state: State, as_json: bool) -> None:
    """List the running node's peers: state, last seen, RTT and benchmark summary (exit 8 when no node runs)."""
    data = snapshot.read(state.home)
    if as_json:
        print_json({"node_id": data["node_id"], "address": data["address"], "peers": data["peers"],
                    "stats": data.get("stats", {})})
        return
    click.echo(f"node {data['node_id'][:16]}  {data['address']}  (security={data.get('security')}, "
               f"auth={data.get('auth')})")
    rows = data["peers"]
    if not rows:
        click.echo("No peers yet. Add bootstrap addresses under [network] bootstrap in config.toml.")
        return
    now = time.time()
    print_table(None, ["node", "name", "state", "last seen", "rtt ms", "load", "benchmark", "address"], [
        (r["node_id"][:16], r["name"], r["state"], f"{now - r['last_seen']:.1f}s ago" if r["last_seen"] else "never",
         "" if r["rtt_ms"] is None else f"{r['rtt_ms']:.2f}", "" if r["load"] is None else f"{r['load']:.2f}",
         ", ".join(f"{k}={v:g}" for k, v in r["benchmark"].items()), r["address"])
        for r in rows
    ])
