"""``gaia task``: run one task locally (``run``), or send jobs through the running node and control them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gaia_core import admission
from gaia_core.commands.jobs import (
    cancel,
    image_id,
    output_text,
    print_jobs,
    result,
    retry,
    submit,
    watch,
    write_private,
)
from gaia_core.commands.params import (
    EntryName,
    Integer,
    entry_or_default,
    limit_options,
    read_input,
    read_module,
)
from gaia_core.console import print_json
from gaia_core.errors import PluginError, TaskError, UsageError
from gaia_core.model import CAPABILITIES, Limits, Task, TaskResult
from gaia_core.state import State


@click.group()
def task() -> None:
    """Run tasks on this machine, or send them to the network."""


def _summary(result: TaskResult, output_file: Path | None) -> dict[str, object]:
    return {
        "task_id": result.task_id, "status": result.status.value, "message": result.message,
        "output_id": result.output_id, "output_bytes": len(result.output),
        "output": None if output_file else output_text(result.output),
        "output_hex": None if output_file else result.output.hex(),
        "output_file": str(output_file) if output_file else None,
        "fuel_used": result.fuel_used, "wall_s": result.wall_s, "cpu_s": result.cpu_s,
        "peak_memory_bytes": result.peak_memory_bytes,
    }


@task.command("run")
@click.argument("module", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--image", metavar="sha256:DIGEST",
              help="Run this container image (task kind oci) instead of MODULE; --entry is its command line.")
@click.option("--input", "source", metavar="FILE|-", help="Input bytes: a file, or '-' for stdin. Default: empty.")
@click.option("--entry", type=EntryName(),
              help="Export to call (e.g. matmul). Default: the module's one task export, or _start for a WASI command.")
@limit_options("")
@click.option("--allow", "allowed", multiple=True, type=click.Choice(sorted(CAPABILITIES)),
              help="Ask for a capability (repeatable); granted only if [offer] capabilities allows it too.")
@click.option("--kind", default="wasm", show_default=True, help="Task kind (picks the runner).")
@click.option("--output", "output_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the output bytes to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def run(state: State, module: Path | None, image: str | None, source: str | None, entry: str | None, fuel: int,
        timeout: float, memory: int, allowed: tuple[str, ...], kind: str, output_file: Path | None,
        as_json: bool) -> None:
    """Run MODULE (or --image) once on this machine and print status, output, fuel and time.

    Exit status 0 when the task ends ok, 7 when it fails (trap, budget, invalid module...).
    """
    if (module is None) == (image is None):
        raise UsageError("give either MODULE or --image sha256:DIGEST", hint="see `gaia task run --help`")
    if image is not None:
        image_id(image)
        kind = "oci"
    spec = state.plugins().runners_by_kind().get(kind)
    if spec is None:
        raise PluginError(f"no active runner for task kind {kind!r}",
                          hint="install one (e.g. `pip install gaia-runner-wasm`) or check `gaia plugins --all`")
    if entry is None and kind != "wasm":
        raise UsageError(f"--entry is required for tasks of kind {kind!r}", hint="give the entry to call")
    if output_file is not None and not output_file.parent.is_dir():
        raise UsageError(f"cannot write --output {output_file}: {output_file.parent} is not a directory",
                         hint="create the directory first, or choose another file")
    limits = Limits(fuel=fuel, timeout_s=timeout, memory_bytes=memory << 20, capabilities=frozenset(allowed))
    admitted = state.config().admission
    data = b"" if source is None else read_input(source, admitted)
    if image is not None and entry is not None:
        the_task = Task(module_id=image_id(image), input=data, entry=entry, kind=kind, limits=limits)
    else:
        assert module is not None
        module_bytes = read_module(module, admitted)
        the_task = Task.create(module_bytes, input=data, entry=entry_or_default(entry, module_bytes, module.name),
                               kind=kind, limits=limits)
    context = state.context()
    admission.check(the_task, context)
    runner = spec.factory(context)
    try:
        result = runner.run(the_task)
    finally:
        runner.close()
    if output_file is not None and result.ok:
        write_private(output_file, result.output)
    summary = _summary(result, output_file if result.ok else None)
    if as_json:
        print_json(summary)
    else:
        _show(summary, result)
    if not result.ok:
        raise SystemExit(TaskError.exit_code)


def _show(summary: dict[str, object], result: TaskResult) -> None:
    click.echo(f"status:  {result.status.value}" + (f" ({result.message})" if result.message else ""))
    if result.ok:
        if summary["output_file"]:
            click.echo(f"output:  {summary['output_bytes']} bytes written to {summary['output_file']}")
        elif summary["output"] is not None:
            click.echo(f"output:  {summary['output']}")
        else:
            click.echo(f"output:  {summary['output_bytes']} bytes (binary; save with --output FILE)")
        click.echo(f"id:      {result.output_id}")
    click.echo(f"fuel:    {result.fuel_used:,}")
    click.echo(f"time:    {result.wall_s * 1000:.2f} ms wall, {result.cpu_s * 1000:.2f} ms CPU")
    click.echo(f"memory:  {result.peak_memory_bytes / 2**20:.2f} MiB peak")


#: This node's most recent jobs with their tasks counted by state, as the running node's ``jobs``
#: control method answers them (gaia_core.jobs.manager.JobManager.list_jobs), for reading state.db.
_JOBS_SQL = """SELECT j.id AS job, j.name, j.status, j.created, j.finished, t.state, COUNT(t.idx) AS n
FROM (SELECT * FROM jobs ORDER BY created DESC LIMIT ?) j LEFT JOIN tasks t ON t.job = j.id
GROUP BY j.id, t.state ORDER BY j.created DESC, j.id, t.state"""


def jobs_from_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:data:`_JOBS_SQL`'s rows (one per job and task state) as one status dict per job, newest first."""
    jobs: dict[str, dict[str, Any]] = {}
    for row in rows:
        job = jobs.setdefault(row["job"], {"job": row["job"], "name": row["name"], "status": row["status"],
                                           "created": row["created"], "finished": row["finished"],
                                           "tasks": {}, "total": 0})
        if row["state"] is not None:
            job["tasks"][row["state"]] = row["n"]
            job["total"] += row["n"]
    return list(jobs.values())


@click.command("list")
@click.option("--limit", type=Integer(1, 10_000), default=20, show_default=True, help="How many recent jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(state: State, limit: int, as_json: bool) -> None:
    """List recent jobs this node submitted (from state.db, read-only, when no node runs)."""
    from gaia_core.commands.node import read_state, running_node

    client = running_node(state)
    if client is None:
        jobs = jobs_from_rows(read_state(state, _JOBS_SQL, (limit,)))
    else:
        with client:
            jobs = client.call("jobs", limit=limit)
    print_jobs(jobs, as_json)


for _command in (submit, watch, cancel, retry, result, list_):
    task.add_command(_command)
