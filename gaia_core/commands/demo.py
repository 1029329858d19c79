"""``gaia demo``: the main job, federated training on a local devnet."""

from __future__ import annotations

from pathlib import Path

import click

from gaia_core import demo as demo_mod
from gaia_core.commands.jobs import wait_for_job
from gaia_core.console import print_json, print_table
from gaia_core.control import ControlClient
from gaia_core.state import State


@click.command()
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 8), help="Devnet size.")
@click.option("--rounds", default=6, show_default=True, type=click.IntRange(1, 100), help="Federated rounds.")
@click.option("--shards", default=6, show_default=True, type=click.IntRange(1, 64), help="Training tasks per round.")
@click.option("--model", default="mlp", show_default=True, type=click.Choice(["mlp", "cnn"]),
              help="What to train: a 2-layer MLP, or a CNN (conv-ReLU-pool-dense) on the tensor host API.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where the devnet and the report go (default: <home>/demo).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def demo(state: State, nodes: int, rounds: int, shards: int, model: str, directory: Path | None,
         as_json: bool) -> None:
    """Train a digits classifier by federated averaging on a local devnet of real nodes, then score it.

    Starts NODES node processes on 127.0.0.1 (CurveZMQ on), runs ROUNDS rounds of SGD WebAssembly
    tasks with proofs and spot-checks, scores the held-out set with inference tasks, prints a summary,
    writes report.md + report.svg, and stops the nodes.
    """
    where = (directory or state.home.root / "demo").resolve()
    workload = demo_mod.find_workload(state.plugins().hook, f"digits-{model}")
    summary = demo_mod.run(where, workload, nodes=nodes, rounds=rounds, shards=shards, plugins=state.plugin_list,
                           echo=(lambda _m: None) if as_json else click.echo,
                           wait=demo_mod.wait_quietly if as_json else _wait_with_progress)
    if as_json:
        print_json(summary)
        return
    print_table("work per node (verified by node0)", ["node", "tasks", "verified", "gigafuel", "credit"],
                [(name, n["tasks"], n["verified"], f"{n['fuel'] / 1e9:.3f}", f"{n['credit']:.4g}")
                 for name, n in sorted(summary["per_node"].items())])
    click.echo("verification: " + (", ".join(f"{k} {v:.0f}" for k, v in summary["verification"].items()) or "none"))
    click.echo(f"final held-out accuracy {summary['final_accuracy']:.1%} in {summary['seconds']}s")
    click.echo(f"report: {summary['report']}")


def _wait_with_progress(client: ControlClient, job: str, label: str, timeout: float) -> object:
    """Follow a demo job with a progress bar until it ends."""
    return wait_for_job(client, job, timeout=timeout, label=label)
