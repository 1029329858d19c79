"""``gaia task submit|watch|cancel|retry|result|list``: jobs sent through the running node to the network.

Wherever a job id is asked for, a unique prefix of it will do: the node resolves it.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import click
from rich.progress import Progress

from gaia_core import codec
from gaia_core.commands import inputs as inputs_mod
from gaia_core.commands.params import (
    MAX_DEADLINE_S,
    EntryName,
    Integer,
    Seconds,
    entry_or_default,
    limit_options,
    read_input,
    read_module,
)
from gaia_core.commands.proof import sealed_proof_frame
from gaia_core.console import human_number, print_json, print_table, short_id
from gaia_core.control import MAX_FRAME, ControlClient
from gaia_core.errors import GaiaError, TaskError, UsageError, ValidationError
from gaia_core.hashing import content_id
from gaia_core.jobs.jobstore import RESULTS_SQL, RESULTS_WITH_PROOFS_SQL, check_job_prefix, one_job
from gaia_core.model import JobStatus, Limits, Task, TaskResult, TaskState
from gaia_core.state import State
from gaia_core.verification import FLOAT_FORMATS, Tolerance

#: A container image named by digest (``--image`` of ``gaia task run`` and ``submit``).
IMAGE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
#: Exit status of a command the user interrupted (Ctrl-C); the job keeps running on the node.
INTERRUPTED = 130
#: Seconds between two looks at a job's progress.
POLL_S = 0.1


def finished_tasks(status: dict[str, Any]) -> int:
    """How many of a job's tasks have ended (done, failed or cancelled)."""
    return status["total"] - status["tasks"].get(TaskState.PENDING, 0)


def outcome_code(status: dict[str, Any]) -> int:
    """The exit status a finished job stands for: 0 when every task is done, else 7."""
    return 0 if status["tasks"].get(TaskState.DONE, 0) == status["total"] else TaskError.exit_code


def wait_for_job(client: ControlClient, job: str, *, timeout: float | None, label: str = "tasks",
                 progress: bool = True,
                 on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Follow a job until it finishes, with a progress bar; return its final status.

    ``on_update`` sees the first status and each one whose task counts or state changed. TaskError after
    ``timeout`` seconds (``None``: no limit).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    status = client.call("job", job=job)
    job = status["job"]  # the full id, when a prefix was given
    with Progress(transient=True, disable=not progress) as bar:
        handle = bar.add_task(label, total=status["total"], completed=finished_tasks(status))
        if on_update is not None:
            on_update(status)
        while status["status"] == JobStatus.RUNNING:
            if deadline is not None and time.monotonic() > deadline:
                raise TaskError(f"job {job} did not finish within {timeout:.0f}s",
                                hint=f"it keeps running; follow it with `gaia task watch {job}`")
            time.sleep(POLL_S)
            previous, status = status, client.call("job", job=job)
            bar.update(handle, completed=finished_tasks(status))
            if on_update is not None and (status["tasks"], status["status"]) != (previous["tasks"],
                                                                                previous["status"]):
                on_update(status)
    return status


def stopped_waiting(job: str, doing: str) -> SystemExit:
    """Say that the job keeps running and how to re-attach; the exit to raise (status 130)."""
    click.echo(f"stopped {doing}: job {job} keeps running on the node; re-attach with `gaia task watch {job}`, "
               f"or cancel it with `gaia task cancel {job}`", err=True)
    return SystemExit(INTERRUPTED)


#: Bytes a task's encoding adds to its module and input (limits, ids, entry), a generous bound.
TASK_OVERHEAD = 4096
#: Outputs up to this size are printed as text; larger ones need --output.
PRINT_LIMIT = 64 << 10


def output_text(output: bytes) -> str | None:
    """The output as text when it is short, printable UTF-8; else None (``output`` in every ``--json``)."""
    if len(output) > PRINT_LIMIT:
        return None
    try:
        text = output.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if all(c.isprintable() or c in "\n\r\t" for c in text) else None


def decode_results(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Control-socket result rows with their TaskResult decoded (``None`` for failed tasks)."""
    return [{**row, "result": codec.decode(row["result"], TaskResult) if row["result"] else None} for row in rows]


def _row_json(row: dict[str, Any], with_output: bool) -> dict[str, Any]:
    result = row["result"]
    out = {k: v for k, v in row.items() if k != "result"}
    if result is not None:
        out.update(status=result.status.value, output_id=result.output_id, fuel_used=result.fuel_used,
                   wall_s=result.wall_s, node_id=result.node_id, message=result.message)
        out.update(output_bytes=len(result.output), output=output_text(result.output) if with_output else None,
                   output_hex=result.output.hex() if with_output else None)
    return out


def _show(rows: list[dict[str, Any]], as_json: bool, output_dir: Path | None) -> None:
    if output_dir is not None:
        private_dir(output_dir)
        for row in rows:
            if row["result"] is not None:
                write_private(output_dir / f"{row['idx']:05d}.out", row["result"].output)
    if as_json:
        print_json([_row_json(r, output_dir is None) for r in rows])
        return
    print_table(None, ["#", "task", "state", "status", "fuel", "wall s", "node", "output / reason"],
                [(r["idx"], short_id(r["id"]), r["state"], r["result"].status.value if r["result"] else "",
                  human_number(r["result"].fuel_used) if r["result"] else "",
                  f"{r['result'].wall_s:.4f}" if r["result"] else "",
                  short_id(r["result"].node_id) if r["result"] else "",
                  (f"{len(r['result'].output)} bytes {r['result'].output_id[:12]}"
                   if r["state"] == TaskState.DONE and r["result"] is not None else r["reason"] or "(released)"))
                 for r in rows], flex=("output / reason",))
    if output_dir is not None:
        click.echo(f"outputs written to {output_dir}")


@click.command()
@click.argument("module", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--image", metavar="sha256:DIGEST",
              help="Run this container image (task kind oci) instead of MODULE; --entry is its command line.")
@click.option("--input", "inputs", multiple=True, metavar="FILE|DIR|GLOB|@LIST|-",
              help="One task per input file: a file, a directory's files, a quoted glob, @LIST (a file of paths), "
              "or '-' for stdin; repeatable. Default: one empty input.")
@click.option("--entry", type=EntryName(),
              help="Export to call. Default: the module's one task export, or _start for a WASI command.")
@click.option("--blob", "blobs", multiple=True, metavar="ID",
              help="A blob every task reads (an id `gaia blob add` printed; repeatable), fetched by the worker "
              "first; with --image, a `docker save` archive of the image for nodes that lack it.")
@limit_options()
@click.option("--priority", type=Integer(-1000, 1000), default=0, help="Higher runs first (-1000 to 1000).")
@click.option("--deadline", type=Seconds(1, MAX_DEADLINE_S),
              help="Seconds from now (1 to a year) after which the task is useless.")
@click.option("--to", "to", metavar="NODE_ID",
              help="Run only on this node: its id or a unique prefix of it, as `gaia peers` shows.")
@click.option("--anywhere", is_flag=True, help="Run on any node, this one included (the default).")
@click.option("--redundancy", type=Integer(1, 9), default=1, show_default=True,
              help="Run each task on k nodes (1 to 9) and accept the output a majority agrees on.")
@click.option("--tolerance", metavar="RTOL[,ATOL]",
              help="Replicas agree when their float outputs are within RTOL (relative) and ATOL (absolute, "
              "default RTOL) instead of byte for byte; see --floats.")
@click.option("--floats", type=click.Choice(FLOAT_FORMATS),
              help="With --tolerance: the outputs are little-endian f32 (the default) or f64 arrays, or text "
              "whose numbers are compared.")
@click.option("--wait", is_flag=True,
              help="Wait for the job to finish and show its results (Ctrl-C stops waiting, not the job).")
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path),
              help="With --wait: write each output to DIR/<n>.out.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def submit(state: State, module: Path | None, image: str | None, inputs: tuple[str, ...], entry: str | None,
           blobs: tuple[str, ...], fuel: int, timeout: float, memory: int, priority: int, deadline: float | None,
           to: str | None, anywhere: bool, redundancy: int, tolerance: str | None, floats: str | None, wait: bool,
           output_dir: Path | None, as_json: bool) -> None:
    """Submit MODULE (or --image) as a job through the running node: one task per --input.

    The job id is printed as soon as the node has accepted the job. With --wait, Ctrl-C stops
    waiting (exit 130) and leaves the job running: follow it again with `gaia task watch JOB`.
    """
    accepted: list[str] = []
    try:
        work = _Work(module, image, entry, _tolerance(tolerance, floats), blobs)
        _submit(state, work, inputs, fuel, timeout, memory, priority, deadline, to, anywhere, redundancy,
                wait, output_dir, as_json, accepted)
    except GaiaError as exc:
        if not as_json or accepted:  # once the job runs, an error is a plain line as for every command
            raise
        print_json(error_object(exc))
        sys.exit(exc.exit_code)


def error_object(exc: GaiaError) -> dict[str, Any]:
    """The JSON answer of a command that could not start: ``{"error", "hint", "kind", "exit_code"}``."""
    return {"error": exc.message, "hint": exc.hint, "kind": type(exc).__name__, "exit_code": exc.exit_code}


def image_id(image: str) -> str:
    """The module id of an ``oci`` task running ``image`` (``--image sha256:DIGEST``); UsageError when it is
    not named by digest."""
    if not IMAGE_DIGEST.fullmatch(image):
        raise UsageError(f"--image {image!r} is not an image digest",
                         hint="name the image by its id: sha256: and 64 hex digits (docker images --no-trunc)")
    return image.removeprefix("sha256:")


def _tolerance(spec: str | None, floats: str | None) -> Tolerance | None:
    """``--tolerance`` and ``--floats`` as a Tolerance (None: byte comparison); UsageError when wrong."""
    if spec is None:
        if floats is not None:
            raise UsageError("--floats says how --tolerance reads the outputs; give --tolerance too")
        return None
    try:
        return Tolerance.parse(spec, floats or "f32")
    except ValidationError as exc:
        raise UsageError(f"--tolerance: {exc.message}", hint=exc.hint) from None


@attrs.frozen
class _Work:
    """What each task of a submitted job runs: MODULE's export ``entry``, or ``image`` with the command line
    ``entry``; how its replicas are compared."""

    module: Path | None
    image: str | None
    entry: str | None
    tolerance: Tolerance | None
    blobs: tuple[str, ...] = ()

    def check(self) -> None:
        """UsageError when the command line does not name exactly one thing to run, or names a blob wrongly."""
        bad = next((blob for blob in self.blobs if not re.fullmatch(r"[0-9a-f]{64}", blob)), None)
        if bad is not None:
            raise UsageError(f"--blob {bad!r} is not a blob id", hint="give the 64 hex characters `gaia blob add` "
                             "or `gaia blob ls` shows")
        if (self.module is None) == (self.image is None):
            raise UsageError("give either MODULE or --image sha256:DIGEST", hint="see `gaia task submit --help`")
        if self.image is not None:
            image_id(self.image)
            if self.entry is None:
                raise UsageError("--entry is required with --image: the command line to run in the image",
                                 hint='e.g. --entry "cat /gaia/input"')


def _submit(state: State, work: _Work, inputs: tuple[str, ...], fuel: int, timeout: float,
            memory: int, priority: int, deadline: float | None, to: str | None, anywhere: bool, redundancy: int,
            wait: bool, output_dir: Path | None, as_json: bool, accepted: list[str]) -> None:
    """The body of :func:`submit`; the id of the job is appended to ``accepted`` once the node accepted it."""
    if to is not None and anywhere:
        raise UsageError("--to and --anywhere exclude each other")
    work.check()
    if to is not None:
        node_prefix(to)  # checked before anything is read or sent
    if output_dir is not None:
        private_dir(output_dir)  # before the job runs: --wait releases the outputs once they are shown
    identity = state.identity()
    limits = Limits(fuel=fuel, timeout_s=timeout, memory_bytes=memory << 20)
    admitted = state.config().admission
    if work.module is not None:
        module_bytes, name = read_module(work.module, admitted), work.module.name
        entry, kind, module_id = entry_or_default(work.entry, module_bytes, name), "wasm", content_id(module_bytes)
    else:
        assert work.image is not None and work.entry is not None  # work.check()
        module_bytes, name, entry, kind, module_id = b"", work.image[:19], work.entry, "oci", image_id(work.image)
    names = inputs_mod.expand(inputs)
    total = inputs_mod.check_sizes(names, admitted)  # every size checked before any input is read
    frame = total + max(1, len(names)) * (len(module_bytes) + TASK_OVERHEAD)
    if frame > MAX_FRAME:
        raise UsageError(f"a job of {len(names)} inputs is about {frame:,} bytes (module included in each task); "
                         f"one submission takes at most {MAX_FRAME:,}", hint="split the inputs across several jobs")
    payloads = [read_input(name, admitted) for name in inputs_mod.progress(names, show=not as_json)] or [b""]
    tasks = [Task(module_id=module_id, module=module_bytes or None, input=data, entry=entry, kind=kind,
                  blobs=work.blobs, limits=limits, submitter=identity.node_id, priority=priority,
                  deadline=time.time() + deadline if deadline else None)
             for data in payloads]
    options = {} if work.tolerance is None else {"tolerance": attrs.asdict(work.tolerance)}
    job = None
    with ControlClient(state.home) as client:
        to = resolve_node(client, to) if to is not None else None
        try:
            with _interrupts_held():  # a job the node accepted always has its id printed
                job = client.call("submit", tasks=[codec.encode(t) for t in tasks], name=name,
                                  redundancy=redundancy, to=to, **options)
                accepted.append(job)
                _announce(job, len(tasks), wait, as_json)
            if not wait:
                return
            wait_for_job(client, job, timeout=max(60.0, 4 * timeout * len(tasks)), progress=not as_json)
            rows = decode_results(client.call("results", job=job, release=True))
        except KeyboardInterrupt:
            if job is None:
                raise
            raise stopped_waiting(job, "waiting" if wait else "submitting") from None
    _show([{"job": job, **row} for row in rows], as_json, output_dir)
    if any(r["state"] != TaskState.DONE or not r["result"].ok for r in rows):
        raise SystemExit(TaskError.exit_code)


def node_prefix(prefix: str) -> str:
    """``prefix`` (``--to``) as the start of a node id, in lowercase; UsageError when it cannot be one."""
    wanted = prefix.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{1,64}", wanted):
        raise UsageError(f"--to {prefix!r} is not a node id or a prefix of one",
                         hint="give the hex id (or its first characters) that `gaia peers` shows")
    return wanted


def resolve_node(client: ControlClient, prefix: str) -> str:
    """The full id of the one node (this one or a peer it knows) whose id starts with ``prefix``, as tables
    show ids; UsageError saying why when none or several do."""
    wanted = node_prefix(prefix)
    states = {p["node_id"]: p["state"] for p in client.call("peers")}
    states.setdefault(client.call("status")["node_id"], "up")
    matches = sorted(node for node in states if node.startswith(wanted))
    if not matches:
        raise UsageError(f"--to {prefix}: no node this node knows has an id starting with {wanted!r}",
                         hint="`gaia peers` lists the peers it knows; a peer must have met this node first")
    if len(matches) > 1:
        raise UsageError(f"--to {prefix} matches {len(matches)} nodes: {', '.join(short_id(m) for m in matches)}",
                         hint="give more characters of the id")
    if states[matches[0]] != "up":
        click.echo(f"note: peer {short_id(matches[0])} is {states[matches[0]]}: the job's tasks wait for it",
                   err=True)
    return matches[0]


@click.command()
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Stream the progress as JSON lines, one per change.")
@click.pass_obj
def watch(state: State, job: str, as_json: bool) -> None:
    """Follow a job's progress until it finishes.

    JOB is a job id or a unique prefix of one. Exit status 0 when every task is done, 7 when a task
    failed or was cancelled, 130 on Ctrl-C (the job keeps running).
    """
    stream = (lambda status: print_json(status, compact=True)) if as_json else None
    with ControlClient(state.home) as client:
        try:
            status = wait_for_job(client, job, timeout=None, progress=not as_json, on_update=stream)
        except KeyboardInterrupt:
            raise stopped_waiting(job, "watching") from None
    if not as_json:
        click.echo(_status_line(status))
    if outcome_code(status):
        raise SystemExit(outcome_code(status))


@click.command()
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def cancel(state: State, job: str, as_json: bool) -> None:
    """Cancel a job: its unfinished tasks end as cancelled.

    JOB is a job id or a unique prefix of one.
    """
    with ControlClient(state.home) as client:
        answer = client.call("cancel", job=job)
    if as_json:
        print_json(answer)
    else:
        click.echo(f"job {answer['job']}: {answer['cancelled']} task(s) cancelled; now {_counts(answer)}")


@click.command()
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def retry(state: State, job: str, as_json: bool) -> None:
    """Run a job's failed tasks again.

    JOB is a job id or a unique prefix of one; follow the job again with `gaia task watch JOB`.
    """
    with ControlClient(state.home) as client:
        answer = client.call("retry", job=job)
    if as_json:
        print_json(answer)
    else:
        click.echo(f"job {answer['job']}: {answer['retried']} failed task(s) queued again; now {_counts(answer)}; "
                   f"follow it with `gaia task watch {answer['job']}`")


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold back a first Ctrl-C until the block ends (a second one interrupts at once)."""
    held: list[int] = []

    def hold(signum: int, _frame: object) -> None:
        if held:
            raise KeyboardInterrupt
        held.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


def _announce(job: str, count: int, wait: bool, as_json: bool) -> None:
    """Print the id of a job just accepted, before anything else (under --json --wait: on stderr)."""
    if as_json and not wait:
        print_json({"job": job, "tasks": count})
        return
    hint = ("Ctrl-C stops waiting, not the job" if wait
            else f"follow it with `gaia task watch {job}`, results with `gaia task result {job}`")
    click.echo(f"job {job}: {count} task(s) submitted; {hint}", err=as_json)


def _status_line(status: dict[str, Any]) -> str:
    return f"job {status['job']} ({status['name']}): {_counts(status)}"


def _counts(status: dict[str, Any]) -> str:
    """``status`` and task counts of a job, for one line: ``running, pending 2, done 1``."""
    return ", ".join([status["status"], *(f"{k} {v}" for k, v in status["tasks"].items())])


@click.command()
@click.argument("job")
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write each output to DIR/<n>.out.")
@click.option("--proofs", "proofs_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write each task's proof to DIR/<n>-<task id>.proof, with its .task and .result beside it.")
@click.option("--release", is_flag=True, help="Delete the job's payloads from the node once shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def result(state: State, job: str, output_dir: Path | None, proofs_dir: Path | None, release: bool,
           as_json: bool) -> None:
    """Show a job's progress and its tasks' results (JOB: an id or a unique prefix).

    With --proofs DIR, check each written proof with `gaia proof verify DIR/<n>-<task id>.proof`.
    """
    from gaia_core.commands.node import running_node

    for directory in (output_dir, proofs_dir):
        if directory is not None:
            private_dir(directory)  # before asking: --release deletes what could then not be written
    client = running_node(state)
    if client is None:
        status, raw = stored_results(state, job, proofs=proofs_dir is not None, release=release)
    else:
        with client:
            status = client.call("job", job=job)
            params = {"proofs": True} if proofs_dir is not None else {}
            raw = client.call("results", job=status["job"], release=release, **params)
    written = None if proofs_dir is None else write_proofs(proofs_dir, raw)
    rows = decode_results([{k: v for k, v in row.items() if k not in ("task", "proof", "seal")} for row in raw])
    if written is not None:
        rows = [{**row, "proof_file": str(written[row["idx"]]) if row["idx"] in written else None} for row in rows]
    if not as_json:
        click.echo(_status_line(status))
    _show([{"job": status["job"], **row} for row in rows], as_json, output_dir)
    if proofs_dir is not None and written is not None and not as_json:
        click.echo(f"{len(written)} proof(s) written to {proofs_dir}; check one with "
                   f"`gaia proof verify {proofs_dir / '<file>.proof'}`"
                   + (f"; {len(rows) - len(written)} task(s) have no proof kept" if len(written) < len(rows) else ""))


#: The jobs whose id starts with a prefix (at most 3), as the node's ``job`` control method describes one.
_MATCHING_JOBS_SQL = ("SELECT id AS job, name, status, created, finished FROM jobs WHERE substr(id, 1, ?) = ? "
                      "ORDER BY id LIMIT 3")


def stored_results(state: State, job: str, *, proofs: bool, release: bool) -> tuple[dict[str, Any],
                                                                                    list[dict[str, Any]]]:
    """A job's status and result rows read from state.db (read-only) when no node runs, in the shapes of the
    node's ``job`` and ``results`` control methods; UnknownJobError as the node would say it."""
    from gaia_core.commands.node import OFFLINE_NOTE, read_state

    if release:
        raise UsageError("--release deletes the payloads from the node's state.db, and no node is running",
                         hint="start the node (`gaia node --detach`) first, or leave out --release")
    job = check_job_prefix(job)
    matches = read_state(state, _MATCHING_JOBS_SQL, (len(job), job), note=False)
    full = one_job(job, [m["job"] for m in matches])
    status = next(m for m in matches if m["job"] == full)
    click.echo(OFFLINE_NOTE, err=True)
    rows = read_state(state, RESULTS_WITH_PROOFS_SQL if proofs else RESULTS_SQL, (status["job"],), note=False)
    counts = Counter(row["state"] for row in rows)
    return {**status, "tasks": dict(sorted(counts.items())), "total": len(rows)}, rows


def proof_stem(idx: int, task_id: str) -> str:
    """The name (without suffix) of task ``idx``'s proof files: ``00003-<task id>``."""
    return f"{idx:05d}-{task_id}"


def write_proofs(directory: Path, rows: list[dict[str, Any]]) -> dict[int, Path]:
    """Write ``<stem>.proof``, ``<stem>.task`` and ``<stem>.result`` (codec frames, mode 0600) for each row
    that has all three, the proof with the worker's batch seal when one was kept; return the proof file of
    each task index written."""
    written = {}
    for row in rows:
        frames: dict[str, bytes] = {key: row.get(key) or b"" for key in ("proof", "task", "result")}
        if not all(frames.values()):
            continue  # not decided by a verified result, or its payloads were released
        task_id = codec.decode(frames["task"], Task).id
        if task_id != row["id"]:
            raise TaskError(f"task {row['idx']}: the node sent another task than {row['id'][:16]}",
                            hint="no proof files are written for it; check the node's state.db")
        stem = proof_stem(row["idx"], task_id)
        frames["proof"] = sealed_proof_frame(frames["proof"], row.get("seal"))
        for suffix, data in frames.items():
            write_private(directory / f"{stem}.{suffix}", data)
        written[row["idx"]] = directory / f"{stem}.proof"
    return written


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) with mode 0700 for a new leaf; UsageError when it cannot be used."""
    try:
        if not path.is_dir():
            path.mkdir(parents=True, mode=0o700)
            path.chmod(0o700)  # whatever the umask
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}", hint="choose another directory") from None


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, a regular file with mode 0600 (a device or pipe such as /dev/stdout is
    written as it is, its mode untouched); UsageError when it cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)  # also when the file was there before
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}", hint="check the directory") from None


def print_jobs(jobs: list[dict[str, Any]], as_json: bool) -> None:
    """Show job status dicts (as the node's ``jobs`` control method answers) as JSON or a table."""
    if as_json:
        print_json(jobs)
        return
    print_table(None, ["job", "name", "status", "tasks"],
                [(j["job"], j["name"], j["status"], ", ".join(f"{k} {v}" for k, v in j["tasks"].items()))
                 for j in jobs], flex=("name", "tasks"))
