"""``gaia model import|ls|rm|run``: users' own ONNX models, run as inference tasks (docs/models.md)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import click
import numpy as np

from gaia_core import admission, codec
from gaia_core.commands.jobs import decode_results, stopped_waiting, wait_for_job
from gaia_core.commands.params import (
    Integer,
    limit_options,
    read_input,
)
from gaia_core.console import print_json, print_table
from gaia_core.control import ControlClient
from gaia_core.errors import PluginError, TaskError, UsageError
from gaia_core.model import Limits, Task, TaskResult, TaskState
from gaia_core.models import graph as graph_format
from gaia_core.models.batches import join_outputs, load_samples, split, task_input
from gaia_core.models.store import ModelStore, StoredModel
from gaia_core.state import State

#: The WASM task that interprets imported models: shipped by gaia-runner-wasm, whose runner links gaia_tensor.
INTERPRETER = ("gaia_runner_wasm", "modules", "onnx_interp.wasm")
#: Samples per task unless --batch-size says otherwise.
BATCH_SIZE = 64


@click.group()
def model() -> None:
    """Import ONNX models and run them as inference tasks on the network."""


def _shape(dims: tuple[int, ...]) -> str:
    return "(N, " + ", ".join(map(str, dims)) + ")"


@model.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="The name to run it by. Default: the file's name without .onnx.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def import_(state: State, file: Path, name: str | None, as_json: bool) -> None:
    """Check FILE (ONNX) and keep it in the node home, content-addressed, to run with `gaia model run`.

    Refuses an operator, attribute or dynamic shape GAIA cannot run with one line naming it (exit 6).
    """
    from gaia_core.models.onnx_import import import_onnx  # onnx loads only for this command

    if not file.is_file():
        raise UsageError(f"ONNX file {str(file)!r} does not exist", hint="give the path of a .onnx file")
    data = read_input(str(file), state.config().admission)
    stored = ModelStore(state.home).add(import_onnx(data, source=file.name), name=name or file.stem,
                                        source=file.name)
    if as_json:
        print_json(stored.to_dict())
        return
    click.echo(f"imported {stored.name} ({stored.id[:12]}): input {_shape(stored.input_dims)} -> output "
               f"{_shape(stored.output_dims)}; {stored.ops} ops, {stored.parameters:,} parameters, "
               f"{stored.bytes:,} bytes")
    click.echo(f"run it with `gaia model run {stored.name} --input SAMPLES.npy`")


@model.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def ls(state: State, as_json: bool) -> None:
    """List the models imported into this node's home."""
    models = ModelStore(state.home).list()
    if as_json:
        print_json([m.to_dict() for m in models])
        return
    if not models:
        click.echo("no models; import one with `gaia model import FILE.onnx`")
        return
    print_table(None, ["name", "id", "input", "output", "parameters", "bytes"],
                [(m.name, m.id[:12], _shape(m.input_dims), _shape(m.output_dims), f"{m.parameters:,}",
                  f"{m.bytes:,}") for m in models])


@model.command("rm")
@click.argument("models", nargs=-1, required=True)
@click.pass_obj
def rm(state: State, models: tuple[str, ...]) -> None:
    """Delete models (each a name or an id prefix of 4 or more characters)."""
    store = ModelStore(state.home)
    found = [store.find(ref) for ref in models]  # every one exists before any is removed
    for stored in found:
        store.remove(stored)
        click.echo(f"removed {stored.name} ({stored.id[:12]})")


@model.command("run")
@click.argument("name", metavar="MODEL")
@click.option("--input", "source", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The samples: a .npy array of shape (N, *input), or one sample.")
@click.option("--output", "output_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the outputs to FILE.npy, or FILE.json. Default: print them as JSON.")
@click.option("--batch-size", type=Integer(1, 1 << 20), default=BATCH_SIZE, show_default=True,
              help="Samples per task.")
@limit_options()
@click.option("--redundancy", type=Integer(1, 9), default=1, show_default=True,
              help="Run each task on k nodes (1 to 9) and accept the output a majority agrees on.")
@click.option("--to", "to", metavar="NODE_ID", help="Run only on this peer.")
@click.option("--local", is_flag=True, help="Run the tasks on this machine, without a node.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary (with the outputs unless --output).")
@click.pass_obj
def run(state: State, name: str, source: Path, output_file: Path | None, batch_size: int, fuel: int, timeout: float,
        memory: int, redundancy: int, to: str | None, local: bool, as_json: bool) -> None:
    """Run MODEL on the samples in --input: one inference task per --batch-size samples, through the node.

    Exit status 0 when every task is done, 6 for a bad input file, 7 when a task failed, 130 on Ctrl-C
    (the job keeps running on the node).
    """
    if output_file is not None and output_file.suffix not in (".npy", ".json"):
        raise UsageError(f"--output {output_file} must end in .npy or .json", hint="e.g. --output outputs.npy")
    if output_file is not None and not output_file.absolute().parent.is_dir():
        raise UsageError(f"--output {output_file}: no directory {str(output_file.absolute().parent)!r}",
                         hint="create it first, or write the outputs elsewhere")
    if not source.is_file():
        raise UsageError(f"samples file {str(source)!r} does not exist", hint="give a .npy file of samples")
    if local and (to or redundancy > 1):
        raise UsageError("--local runs here: it takes neither --to nor --redundancy")
    store = ModelStore(state.home)
    stored = store.find(name)
    data = store.read(stored)
    graph = graph_format.decode(data)
    samples = load_samples(source, graph, name=stored.name)
    batches = split(samples, batch_size)
    inputs = [task_input(data, batch) for batch in batches]
    limit = state.config().admission.max_input_bytes
    if len(inputs[0]) > limit:
        raise UsageError(f"a task of {batch_size} samples is {len(inputs[0]):,} bytes; nodes take at most "
                         f"{limit:,} ([admission] max_input_bytes)", hint="give a smaller --batch-size")
    limits = Limits(fuel=fuel, timeout_s=timeout, memory_bytes=memory << 20)
    module = interpreter_module()
    submitter = {} if local else {"submitter": state.identity().node_id}
    tasks = [Task.create(module, input=x, entry="infer", limits=limits, **submitter) for x in inputs]
    counts = [len(batch) for batch in batches]
    if local:
        results = _run_here(state, tasks)
        _write(join_outputs([r.output for r in results], counts, graph), output_file, stored, None, as_json)
        return
    with ControlClient(state.home) as client:
        job, results = _run_on_network(client, tasks, label=f"model {stored.name}", redundancy=redundancy, to=to,
                                       quiet=as_json)
        _write(join_outputs([r.output for r in results], counts, graph), output_file, stored, job, as_json)
        client.call("results", job=job, release=True)  # saved: the node may now forget the job's payloads


def interpreter_module() -> bytes:
    """The model interpreter's WASM bytes; PluginError when gaia-runner-wasm is not installed."""
    package, *path = INTERPRETER
    try:
        return resources.files(package).joinpath(*path).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise PluginError("the model interpreter (onnx_interp.wasm of gaia-runner-wasm) is not installed",
                          hint="pip install gaia-runner-wasm") from None


def _run_here(state: State, tasks: list[Task]) -> list[TaskResult]:
    """Run the tasks one by one with this machine's wasm runner; TaskError on the first that fails."""
    spec = state.plugins().runners_by_kind().get("wasm")
    if spec is None:
        raise PluginError("no active runner for task kind 'wasm'", hint="install gaia-runner-wasm and keep it in "
                          "--plugins")
    context = state.context()
    runner = spec.factory(context)
    results = []
    try:
        for i, task in enumerate(tasks):
            admission.check(task, context)
            result = runner.run(task)
            if not result.ok:
                raise TaskError(f"task {i} of {len(tasks)} ended {result.status.value}: {result.message}",
                                hint="check the samples and the limits (--fuel, --memory, --timeout)")
            results.append(result)
    finally:
        runner.close()
    return results


def _run_on_network(client: ControlClient, tasks: list[Task], *, label: str, redundancy: int, to: str | None,
                    quiet: bool) -> tuple[str, list[TaskResult]]:
    """Submit the tasks as one job through the running node, wait, and return its id and results in order.

    The node keeps the job's payloads: a failed task can be retried, and outputs not yet saved are not lost.
    """
    job = None
    try:
        job = client.call("submit", tasks=[codec.encode(t) for t in tasks], name=label, redundancy=redundancy, to=to)
        click.echo(f"job {job}: {len(tasks)} task(s) submitted; Ctrl-C stops waiting, not the job", err=True)
        wait_for_job(client, job, timeout=max(60.0, 4 * tasks[0].limits.timeout_s * len(tasks)), label=label,
                     progress=not quiet)
        rows = decode_results(client.call("results", job=job))
    except KeyboardInterrupt:
        if job is None:
            raise
        raise stopped_waiting(job, "waiting") from None
    for row in rows:
        result = row["result"]
        if row["state"] != TaskState.DONE or result is None or not result.ok:
            why = result.message or result.status.value if result is not None else row["reason"] or row["state"]
            raise TaskError(f"job {job}: task {row['idx']} of {len(rows)} failed: {why}",
                            hint=f"see every task with `gaia task result {job}`; retry with `gaia task retry {job}`")
    return job, [row["result"] for row in rows]


def _write(outputs: np.ndarray, output_file: Path | None, stored: StoredModel, job: str | None,
           as_json: bool) -> None:
    """Save or print the outputs, and say where they went."""
    summary: dict[str, object] = {"model": stored.name, "model_id": stored.id, "job": job,
                                  "shape": list(outputs.shape), "output_file": str(output_file or "") or None}
    if output_file is not None:
        try:
            if output_file.suffix == ".npy":
                np.save(output_file, outputs)
            else:
                output_file.write_text(json.dumps(outputs.tolist()) + "\n", encoding="utf-8")
        except OSError as exc:
            kept = f"the outputs stay on the node: `gaia task result {job} --output DIR`, or " if job else ""
            raise UsageError(f"cannot write {output_file}: {exc.strerror or exc}",
                             hint=f"{kept}choose another --output") from None
    if as_json:
        print_json(summary if output_file is not None else {**summary, "outputs": outputs.tolist()})
    elif output_file is not None:
        click.echo(f"{outputs.shape[0]} output(s) of shape {list(outputs.shape[1:])} written to {output_file}")
    else:
        click.echo(json.dumps(outputs.tolist()))
