"""``gaia task submit|result|list``: jobs sent through the running node to the network."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from gaia_core import codec
from gaia_core.console import print_json, print_table
from gaia_core.control import ControlClient
from gaia_core.errors import TaskError, UsageError
from gaia_core.model import Limits, Task, TaskResult
from gaia_core.state import State


def wait_for_job(client: ControlClient, job: str, *, timeout: float, label: str = "tasks",
                 progress: bool = True) -> dict[str, Any]:
    """Poll a job until it finishes, with a progress bar; TaskError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with Progress(transient=True, disable=not progress) as bar:
        status = client.call("job", job=job)
        handle = bar.add_task(label, total=status["total"])
        while status["status"] != "finished":
            if time.monotonic() > deadline:
                raise TaskError(f"job {job} did not finish within {timeout:.0f}s",
                                hint=f"check it later with `gaia task result {job}`")
            time.sleep(0.05)
            status = client.call("job", job=job)
            done = status["tasks"].get("done", 0) + status["tasks"].get("failed", 0)
            bar.update(handle, completed=done)
    return status


def decode_results(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Control-socket result rows with their TaskResult decoded (``None`` for failed tasks)."""
    return [{**row, "result": codec.decode(row["result"], TaskResult) if row["result"] else None} for row in rows]


def _row_json(row: dict[str, Any], with_output: bool) -> dict[str, Any]:
    result = row["result"]
    out = {k: v for k, v in row.items() if k != "result"}
    if result is not None:
        out.update(status=result.status.value, output_id=result.output_id, fuel_used=result.fuel_used,
                   wall_s=result.wall_s, node_id=result.node_id, message=result.message)
        if with_output:
            out["output_hex"] = result.output.hex()
    return out


def _show(rows: list[dict[str, Any]], as_json: bool, output_dir: Path | None) -> None:
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for row in rows:
            if row["result"] is not None:
                (output_dir / f"{row['idx']:05d}.out").write_bytes(row["result"].output)
    if as_json:
        print_json([_row_json(r, output_dir is None) for r in rows])
        return
    print_table(None, ["#", "task", "state", "status", "fuel", "wall s", "node", "output / reason"],
                [(r["idx"], r["id"][:12], r["state"], r["result"].status.value if r["result"] else "",
                  r["result"].fuel_used if r["result"] else "", f"{r['result'].wall_s:.4f}" if r["result"] else "",
                  r["result"].node_id[:12] if r["result"] else "",
                  (f"{len(r['result'].output)} bytes {r['result'].output_id[:12]}"
                   if r["state"] == "done" and r["result"] is not None else r["reason"] or "(released)"))
                 for r in rows])
    if output_dir is not None:
        click.echo(f"outputs written to {output_dir}")


@click.command()
@click.argument("module", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--input", "inputs", multiple=True, metavar="FILE|-",
              type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Input file ('-' for stdin); repeat for one task per input. Default: one empty input.")
@click.option("--entry", default="run", show_default=True, help="Export to call.")
@click.option("--fuel", type=click.IntRange(min=1), default=Limits().fuel, show_default=True, help="Fuel budget per task.")
@click.option("--timeout", type=click.FloatRange(min=0.001), default=Limits().timeout_s, show_default=True,
              help="Wall-clock seconds per task.")
@click.option("--memory", type=click.IntRange(min=1), default=Limits().memory_bytes >> 20, show_default=True,
              help="Memory cap per task, MiB.")
@click.option("--priority", type=click.IntRange(-1000, 1000), default=0, help="Higher runs first.")
@click.option("--deadline", type=click.FloatRange(min=1), help="Seconds from now after which the task is useless.")
@click.option("--to", "to", metavar="NODE_ID", help="Run only on this peer.")
@click.option("--anywhere", is_flag=True, help="Run on any node, this one included (the default).")
@click.option("--redundancy", type=click.IntRange(1, 9), default=1, show_default=True,
              help="Run each task on k nodes and accept the output a majority agrees on.")
@click.option("--wait", is_flag=True, help="Wait for the job to finish and show its results.")
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path),
              help="With --wait: write each output to DIR/<n>.out.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def submit(state: State, module: Path, inputs: tuple[str, ...], entry: str, fuel: int, timeout: float, memory: int,
           priority: int, deadline: float | None, to: str | None, anywhere: bool, redundancy: int, wait: bool,
           output_dir: Path | None, as_json: bool) -> None:
    """Submit MODULE as a job through the running node: one task per --input."""
    if to and anywhere:
        raise UsageError("--to and --anywhere exclude each other")
    identity = state.identity()
    limits = Limits(fuel=fuel, timeout_s=timeout, memory_bytes=memory << 20)
    module_bytes = module.read_bytes()
    payloads = [sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes() for name in inputs] or [b""]
    tasks = [Task.create(module_bytes, input=data, entry=entry, limits=limits, submitter=identity.node_id,
                         priority=priority, deadline=time.time() + deadline if deadline else None)
             for data in payloads]
    with ControlClient(state.home) as client:
        job = client.call("submit", tasks=[codec.encode(t) for t in tasks], name=module.name,
                          redundancy=redundancy, to=to)
        if not wait:
            if as_json:
                print_json({"job": job, "tasks": len(tasks)})
            else:
                click.echo(f"job {job}: {len(tasks)} task(s) submitted; see `gaia task result {job}`")
            return
        wait_for_job(client, job, timeout=max(60.0, 4 * timeout * len(tasks)), progress=not as_json)
        rows = decode_results(client.call("results", job=job, release=True))
    _show(rows, as_json, output_dir)
    if any(r["state"] != "done" or not r["result"].ok for r in rows):
        raise SystemExit(TaskError.exit_code)


@click.command()
@click.argument("job")
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write each output to DIR/<n>.out.")
@click.option("--release", is_flag=True, help="Delete the job's payloads from the node once shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def result(state: State, job: str, output_dir: Path | None, release: bool, as_json: bool) -> None:
    """Show a job's progress and its tasks' results."""
    with ControlClient(state.home) as client:
        status = client.call("job", job=job)
        rows = decode_results(client.call("results", job=job, release=release))
    if not as_json:
        click.echo(f"job {job} ({status['name']}): {status['status']}, "
                   + ", ".join(f"{k} {v}" for k, v in status["tasks"].items()))
    _show(rows, as_json, output_dir)


@click.command("list")
@click.option("--limit", default=20, show_default=True, help="How many recent jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_jobs(state: State, limit: int, as_json: bool) -> None:
    """List recent jobs this node submitted."""
    with ControlClient(state.home) as client:
        jobs = client.call("jobs", limit=limit)
    if as_json:
        print_json(jobs)
        return
    print_table(None, ["job", "name", "status", "tasks"],
                [(j["job"], j["name"], j["status"], ", ".join(f"{k} {v}" for k, v in j["tasks"].items()))
                 for j in jobs])
