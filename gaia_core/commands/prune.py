"""``gaia prune``: delete the inputs and outputs of finished jobs now, instead of at the next retention round."""

from __future__ import annotations

import click

from gaia_core.commands.params import MAX_DEADLINE_S, Seconds
from gaia_core.console import print_json
from gaia_core.state import State
from gaia_core.store import Store


@click.command()
@click.option("--older-than", "older_than", type=Seconds(0, MAX_DEADLINE_S), metavar="SECONDS",
              help="Prune jobs that finished more than SECONDS ago (0 = every finished job). "
                   "Default: [privacy] job_retention_s.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the jobs pruned.")
@click.pass_obj
def prune(state: State, older_than: float | None, as_json: bool) -> None:
    """Delete the task inputs, modules and outputs of finished jobs, keeping ids, statuses and the ledger.

    A running node does this by itself once a minute for jobs past [privacy] job_retention_s; this
    command does it now, with or without a running node.
    """
    retention = state.config().privacy.job_retention_s if older_than is None else older_than
    jobs: list[str] = []
    if state.home.state_db.exists():  # no database: nothing was ever kept
        store = Store(state.home.state_db)
        try:
            jobs = store.prune(retention)
        finally:
            store.close()
    if as_json:
        print_json({"older_than_s": retention, "jobs": jobs})
    elif jobs:
        click.echo(f"deleted the inputs and outputs of {len(jobs)} job(s) finished more than {retention:g} s ago:")
        for job in jobs:
            click.echo(f"  {job}")
    else:
        click.echo(f"nothing to prune: no job finished more than {retention:g} s ago still holds inputs or outputs")
