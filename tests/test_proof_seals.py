"""Evidence that outlives the channel (issue #14): the submitter keeps each accepted result's batch seal and
inclusion path with its proof, ``gaia task result JOB --proofs DIR`` writes them into the proof file, and
``gaia proof verify`` checks the result against the path and the root's signature by the worker's key, saying
what failed; proof files written without a seal still verify as before ("no batch seal")."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner
from nodes import call, echo_tasks, gaia, node_id, running_devnet, wait_job

from gaia_core import codec
from gaia_core.cli import cli
from gaia_core.commands.proof import SealedProof, read_proof
from gaia_core.config import Home
from gaia_core.evidence import ItemSeal, check_item, open_items, seal_batch, signed_bytes
from gaia_core.identity import Identity
from gaia_core.jobs.jobstore import JobStore
from gaia_core.model import Proof, TaskResult, TaskState
from gaia_core.testing.conformance.prover import sample_task

# ---------------------------------------------------------------- end to end: a job run on a worker process


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Home, list[Path]]]:
    """A devnet of 2; a job of 3 tasks run on the worker; its proof files written by the submitter."""
    pytest.importorskip("gaia_runner_wasm.workloads")
    with running_devnet(tmp_path_factory.mktemp("devnet"), 2) as (submitter, worker):
        tasks = echo_tasks([b"one", b"two", b"three"], node_id(submitter))
        job = call(submitter, "submit", tasks=[codec.encode(t) for t in tasks], name="seals", redundancy=1,
                   to=node_id(worker))
        assert wait_job(submitter, job)["tasks"] == {"done": 3}
        out = tmp_path_factory.mktemp("proofs")
        rows = json.loads(gaia(submitter, "task", "result", job, "--proofs", str(out), "--json").stdout)
        yield worker, [Path(row["proof_file"]) for row in rows]


def test_each_proof_file_carries_the_workers_seal_and_verifies(written: tuple[Home, list[Path]]) -> None:
    worker, files = written
    for file in files:
        claim, sealed = read_proof(file)
        assert sealed is not None and sealed.seal.sender == node_id(worker) == claim.node_id
        assert sealed.index < sealed.seal.count and len(sealed.path) <= (sealed.seal.count - 1).bit_length()
        verified = gaia(worker, "proof", "verify", str(file), check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "batch seal verified" in verified.stdout and node_id(worker)[:16] in verified.stdout
        shown = gaia(worker, "proof", "show", str(file), "--json").stdout
        assert json.loads(shown)["seal"]["seal"]["sender"] == node_id(worker)


def _copy(files: list[Path], into: Path) -> Path:
    """A copy of the first proof file with its .task and .result, in ``into``."""
    for suffix in (".proof", ".task", ".result"):
        shutil.copy(files[0].with_suffix(suffix), into / files[0].with_suffix(suffix).name)
    return into / files[0].name


def _rewrite_seal(file: Path, change: Callable[[ItemSeal], ItemSeal]) -> None:
    claim, sealed = read_proof(file)
    assert sealed is not None
    file.write_bytes(codec.encode(SealedProof(claim, change(sealed))))


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


def _resealed_by_another(sealed: ItemSeal) -> ItemSeal:
    other = Identity.generate()
    seal = attrs.evolve(sealed.seal, sender=other.node_id)
    return attrs.evolve(sealed, seal=attrs.evolve(seal, signature=other.sign(signed_bytes(seal))))


def _alter_output(file: Path) -> None:
    result = file.with_suffix(".result")
    result.write_bytes(codec.encode(attrs.evolve(codec.decode(result.read_bytes(), TaskResult), output=b"forged")))


_TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "output": (_alter_output, "altered output"),
    "path": (lambda f: _rewrite_seal(f, lambda s: attrs.evolve(s, path=(bytes(32), *s.path[1:]))), "wrong path"),
    "index": (lambda f: _rewrite_seal(f, lambda s: attrs.evolve(s, index=s.index + 1)), "wrong path"),
    "root": (lambda f: _rewrite_seal(f, lambda s: attrs.evolve(s, seal=attrs.evolve(s.seal, root=_flip(
        s.seal.root)))), "wrong path"),
    "signature": (lambda f: _rewrite_seal(f, lambda s: attrs.evolve(s, seal=attrs.evolve(
        s.seal, signature=_flip(s.seal.signature)))), "bad signature"),
    "time": (lambda f: _rewrite_seal(f, lambda s: attrs.evolve(s, seal=attrs.evolve(
        s.seal, sent_at=s.seal.sent_at + 1))), "bad signature"),
    "signer": (lambda f: _rewrite_seal(f, _resealed_by_another), "unknown signer"),
}


@pytest.mark.parametrize("field", sorted(_TAMPERING))
def test_a_tampered_field_is_refused_with_its_own_line(written: tuple[Home, list[Path]], cli_runner: CliRunner,
                                                       tmp_path: Path, field: str) -> None:
    file = _copy(written[1], tmp_path)
    tamper, what = _TAMPERING[field]
    tamper(file)
    run = cli_runner.invoke(cli, ["proof", "verify", str(file)])
    assert run.exit_code == 6, run.output
    first, second = run.output.splitlines()[:2]  # the verdict (the prover's reason first), then the seal's
    assert first.startswith("invalid: ") and second.startswith(f"batch seal refused: {what}"), run.output
    assert field == "output" or first.startswith(f"invalid: batch seal: {what}"), run.output
    verdict = json.loads(cli_runner.invoke(cli, ["proof", "verify", str(file), "--json"]).output)
    assert verdict["status"] == "invalid" and what in verdict["seal"]


def test_a_proof_file_without_a_seal_verifies_as_before(written: tuple[Home, list[Path]], cli_runner: CliRunner,
                                                        tmp_path: Path) -> None:
    file = _copy(written[1], tmp_path)
    claim, _ = read_proof(file)
    file.write_bytes(codec.encode(claim))  # a file as written before seals were kept
    run = cli_runner.invoke(cli, ["proof", "verify", str(file)])
    assert run.exit_code == 0 and run.output.startswith("valid") and "no batch seal" in run.output, run.output
    assert "batch seal" in cli_runner.invoke(cli, ["proof", "show", str(file)]).output


def test_a_malformed_seal_is_one_line(cli_runner: CliRunner, tmp_path: Path) -> None:
    file = tmp_path / "x.proof"
    file.write_bytes(codec.canonical_bytes({"gaia": codec.SCHEMA_VERSION, "type": "SealedProof",
                                            "data": {"proof": {}, "seal": 7}}))
    run = cli_runner.invoke(cli, ["proof", "verify", str(file)])
    assert run.exit_code == 6 and run.output.startswith("invalid: not a proof") and "Traceback" not in run.output


# ---------------------------------------------------------------- the store keeps the seal with the proof


def test_check_item_says_what_failed() -> None:
    items = [b"a", b"b", b"c"]
    first, second, _ = open_items(seal_batch(Identity.generate(), "task.results", items), items)
    assert check_item(second, b"b") is None
    assert (check_item(second, b"x") or "").startswith("altered output")
    assert (check_item(attrs.evolve(second, path=first.path), b"b") or "").startswith("wrong path")


def _finish_sealed(jobstore: JobStore, job: str) -> bytes:
    task = sample_task()
    jobstore.create(job, "t", 1, 0.0, [task], None)
    result = TaskResult(task_id=task.id, status="ok", node_id="ab" * 32)
    proof = Proof(scheme="s", task_id=task.id, node_id="ab" * 32, commitment=b"c", body=b"b")
    seal = codec.encode(open_items(seal_batch(Identity.generate(), "task.results", [b"x"]), [b"x"])[0])
    jobstore.finish_task(job, 0, TaskState.DONE, result=result, proof=proof, seal=seal)
    jobstore.finish_job(job)
    jobstore.store.flush()
    return seal


@pytest.mark.parametrize("purge", ["release", "prune", "requeue"])
def test_the_seal_is_kept_with_the_proof_and_purged_with_it(jobstore: JobStore, purge: str) -> None:
    job = "cc" * 16
    seal = _finish_sealed(jobstore, job)
    assert next(jobstore.results(job, proofs=True))["seal"] == seal
    if purge == "release":
        jobstore.release(job)
    elif purge == "prune":
        assert jobstore.store.prune(-1.0) == [job]
    else:
        jobstore.requeue(job, [0])
    assert next(jobstore.results(job, proofs=True))["seal"] is None
    assert jobstore.store.execute("SELECT COUNT(*) FROM seals") == [(0,)]

