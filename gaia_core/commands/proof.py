"""``gaia proof show`` and ``gaia proof verify``: read proof files and check them with the prover of their scheme.

Proof, task and result files are codec frames (:func:`gaia_core.codec.encode`), as
``gaia task result JOB --proofs DIR`` writes them: ``<n>-<task id>.proof`` with its ``.task`` and
``.result`` beside it, which ``verify`` uses when --task and --result are not given. A proof file is a
:class:`SealedProof` when the worker's batch seal over its result was kept (a plain Proof frame otherwise,
as written before seals were kept: both are read). ``verify`` exits 0 for a valid proof and 6 for one
that is invalid or could not be verified.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TypeVar

import click
from attrs import frozen

from gaia_core.codec import decode, encode, unstructure
from gaia_core.console import print_json
from gaia_core.errors import CodecError, PluginError, UsageError, ValidationError
from gaia_core.evidence import ItemSeal, check_item
from gaia_core.jobs.messages import result_leaf
from gaia_core.model import Proof, Task, TaskResult, Verdict, VerdictStatus
from gaia_core.state import State

T = TypeVar("T")
_SIMULATED = "SIMULATED: a mock proof, it proves nothing cryptographically about the execution"
_NO_SEAL = ("no batch seal: the file carries none (written before GAIA kept them, or a result the submitter "
            "ran itself); only the proof was checked")


@frozen
class SealedProof:
    """A proof file's contents with the worker's evidence for its result: its batch seal and inclusion path
    over the item :func:`gaia_core.jobs.messages.result_leaf` (the ``.result`` frame, this proof's frame)."""

    proof: Proof
    seal: ItemSeal


def sealed_proof_frame(proof: bytes, seal: bytes | None) -> bytes:
    """The proof file of a stored ``proof`` frame and its ``seal`` (an ItemSeal frame; None: the Proof frame)."""
    return proof if seal is None else encode(SealedProof(decode(proof, Proof), decode(seal, ItemSeal)))


@click.group()
def proof() -> None:
    """Show and verify proofs of work (files written with gaia's codec)."""


@proof.command("show")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (bytes as hex).")
def show(file: Path, as_json: bool) -> None:
    """Print what the proof in FILE claims: scheme, task, node, commitment, sizes, batch seal."""
    claim, sealed = read_proof(file)
    if as_json:
        print_json({**unstructure(claim), "body_bytes": len(claim.body),
                    "seal": None if sealed is None else unstructure(sealed)})
        return
    if claim.simulated:
        click.secho(_SIMULATED, fg="yellow")
    rows = [("scheme", claim.scheme), ("task", claim.task_id), ("node", claim.node_id),
            ("commitment", claim.commitment.hex()), ("body", f"{len(claim.body)} bytes"),
            ("signature", f"{len(claim.signature)} bytes"), ("proving time", f"{claim.proving_s:.6f} s"),
            ("created", time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(claim.created_at))),
            ("batch seal", "none" if sealed is None else _describe(sealed))]
    for key, value in rows:
        click.echo(f"{key + ':':<14}{value}")


@proof.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--task", "task_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The task the proof claims (a Task frame).")
@click.option("--result", "result_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The result the proof claims (a TaskResult frame).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.pass_obj
def verify(state: State, file: Path, task_file: Path | None, result_file: Path | None, as_json: bool) -> None:
    """Check the proof in FILE against --task and --result with the prover of its scheme.

    Without them, FILE's .task and .result siblings are used when both exist (as written by
    `gaia task result JOB --proofs DIR`). Exit status 0 when the proof is valid, 6 when it is
    invalid or could not be verified.
    """
    if (task_file is None) != (result_file is None):
        raise UsageError("--task and --result go together", hint="give both files, or neither to only read the proof")
    if task_file is None:
        task_file, result_file = siblings(file)
    task = _read(task_file, Task) if task_file else None
    result = _read(result_file, TaskResult) if result_file else None
    simulated, seal_line = False, ""
    try:
        claim, sealed = read_proof(file)
    except CodecError as exc:
        verdict = Verdict(VerdictStatus.INVALID, f"not a proof: {exc.message}")
    else:
        simulated = claim.simulated
        verdict = _check(state, claim, task, result)
        failed, seal_line = _check_seal(claim, sealed, result, result_file)
        if failed and verdict.status is not VerdictStatus.INVALID:  # an invalid proof keeps its prover's reason
            verdict = Verdict(VerdictStatus.INVALID, f"batch seal: {failed}", claim.task_id, claim.scheme)
    if as_json:
        print_json({"file": str(file), "status": verdict.status, "reason": verdict.reason,
                    "task_id": verdict.task_id, "scheme": verdict.scheme, "simulated": simulated,
                    "seal": seal_line})
    else:
        colour = {VerdictStatus.VALID: "green", VerdictStatus.INVALID: "red"}.get(verdict.status, "yellow")
        click.echo(click.style(verdict.status, fg=colour, bold=True) + f": {verdict.reason}")
        if seal_line:
            click.echo(seal_line)
        if simulated:
            click.secho(_SIMULATED, fg="yellow")
    if not verdict.ok:
        sys.exit(ValidationError.exit_code)


def siblings(file: Path) -> tuple[Path, Path] | tuple[None, None]:
    """The ``.task`` and ``.result`` beside a ``.proof`` file when both exist, else ``(None, None)``."""
    if file.suffix != ".proof":
        return None, None
    task_file, result_file = file.with_suffix(".task"), file.with_suffix(".result")
    if task_file.is_file() and result_file.is_file():
        return task_file, result_file
    return None, None


def read_proof(path: Path) -> tuple[Proof, ItemSeal | None]:
    """The proof in the file ``path`` and the batch seal kept with it (None in a plain Proof frame)."""
    try:
        sealed = _read(path, SealedProof)
    except CodecError as exc:
        if "got 'Proof'" not in exc.message:
            raise
        return _read(path, Proof), None
    return sealed.proof, sealed.seal


def _describe(sealed: ItemSeal) -> str:
    seal = sealed.seal
    when = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(seal.sent_at))
    return (f"result {sealed.index + 1} of {seal.count} sealed by {seal.sender[:16]} at {when}, "
            f"root {seal.root.hex()[:16]}")


def _check_seal(claim: Proof, sealed: ItemSeal | None, result: TaskResult | None,
                result_file: Path | None) -> tuple[str, str]:
    """(what failed or "", the line to print) for the batch seal of ``claim``'s ``result``."""
    if sealed is None:
        return "", _NO_SEAL
    if result is None or result_file is None:
        return "", f"batch seal not checked (give --task and --result): {_describe(sealed)}"
    sender = sealed.seal.sender
    if sender != result.node_id:
        failed = (f"unknown signer: sealed by {sender[:16]}, but the result was run by {result.node_id[:16]} "
                  "(a worker seals with the key its node id is)")
    else:
        failed = check_item(sealed, result_leaf(result_file.read_bytes(), encode(claim))) or ""
    return failed, (f"batch seal refused: {failed}" if failed else f"batch seal verified: {_describe(sealed)}")


def _check(state: State, claim: Proof, task: Task | None, result: TaskResult | None) -> Verdict:
    """The verdict of the prover registered for ``claim.scheme``."""
    if task is None or result is None:
        return Verdict(VerdictStatus.UNVERIFIED,
                       "read only; give --task and --result to check the proof against the work",
                       claim.task_id, claim.scheme)
    try:
        spec = state.plugins().prover(claim.scheme)
    except PluginError as exc:
        return Verdict(VerdictStatus.UNVERIFIED, str(exc), claim.task_id, claim.scheme)
    return spec.factory(state.context()).verify(claim, task, result)


def _read(path: Path, cls: type[T]) -> T:
    """Decode the ``cls`` frame in ``path``; UsageError when unreadable, CodecError when not such a frame."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint="check the path") from None
    try:
        return decode(data, cls)
    except CodecError as exc:
        raise CodecError(f"{path}: {exc.message}", hint=exc.hint or f"is it a {cls.__name__} file?") from None
