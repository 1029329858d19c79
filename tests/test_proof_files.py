"""Proof files: the submitter keeps each task's verified proof, ``gaia task result JOB --proofs DIR`` writes it
beside its task and result, and ``gaia proof verify FILE`` checks it end to end; ``task submit --json`` answers a
JSON error object when the job cannot even start.
"""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from nodes import call, echo_tasks, gaia, node_id, running_devnet, wait_job

from gaia_core import codec
from gaia_core.cli import cli
from gaia_core.commands.jobs import proof_stem, write_proofs
from gaia_core.commands.proof import read_proof, siblings
from gaia_core.config import Home
from gaia_core.jobs.jobstore import JobStore
from gaia_core.model import Proof, Task, TaskResult
from gaia_core.store import MIGRATIONS, SCHEMA_VERSION, Store
from gaia_core.testing.conformance.prover import sample_task

NODE = "ab" * 32


def _proof(task: Task) -> Proof:
    return Proof(scheme="nobody-has-this", task_id=task.id, node_id=NODE, commitment=b"c" * 32, body=b"b" * 8,
                 created_at=1_700_000_000.0)


# ---------------------------------------------------------------- the job store keeps the proof with the result


def test_a_finished_task_keeps_its_proof_until_requeued(jobstore: JobStore) -> None:
    task = sample_task()
    jobstore.create("aa" * 16, "t", 1, 0.0, [task], None)
    result = TaskResult(task_id=task.id, status="ok", node_id=NODE)
    jobstore.finish_task("aa" * 16, 0, "done", result=result, proof=_proof(task))
    row = next(jobstore.results("aa" * 16, proofs=True))
    assert codec.decode(row["proof"], Proof) == _proof(task) and codec.decode(row["task"], Task) == task
    assert "proof" not in next(jobstore.results("aa" * 16))  # only asked for: the control reply stays small
    jobstore.requeue("aa" * 16, [0])
    assert next(jobstore.results("aa" * 16, proofs=True))["proof"] is None


def test_a_proof_without_a_result_is_not_kept(jobstore: JobStore) -> None:
    task = sample_task()
    jobstore.create("aa" * 16, "t", 1, 0.0, [task], None)
    jobstore.finish_task("aa" * 16, 0, "failed", reason="timeout", proof=_proof(task))
    assert next(jobstore.results("aa" * 16, proofs=True))["proof"] is None


@pytest.mark.parametrize("purge", ["release", "prune"])
def test_proofs_are_purged_with_the_payloads(jobstore: JobStore, purge: str) -> None:
    task = sample_task()
    jobstore.create("bb" * 16, "t", 1, 0.0, [task], None)
    jobstore.finish_task("bb" * 16, 0, "done", result=TaskResult(task_id=task.id, status="ok", node_id=NODE),
                         proof=_proof(task))
    jobstore.finish_job("bb" * 16)
    jobstore.store.flush()
    if purge == "release":
        jobstore.release("bb" * 16)
    else:
        assert jobstore.store.prune(-1.0) == ["bb" * 16]
    row = next(jobstore.results("bb" * 16, proofs=True))
    assert (row["task"], row["result"], row["proof"]) == (None, None, None)


@pytest.mark.parametrize(("version", "table", "columns"), [(2, "proofs", ["job", "idx", "proof"]),
                                                          (4, "seals", ["job", "idx", "seal"])])
def test_an_older_database_gains_the_proof_tables(tmp_path: Path, version: int, table: str,
                                                  columns: list[str]) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(";".join(MIGRATIONS[:version]) + f"; PRAGMA user_version = {version};")
    db.close()
    path.chmod(0o600)
    Store(path).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) and SCHEMA_VERSION > version
        assert [row[1] for row in db.execute(f"PRAGMA table_info({table})")] == columns
    finally:
        db.close()


# ---------------------------------------------------------------- the files and the commands, without a node


def test_write_proofs_names_files_by_index_and_task_and_skips_tasks_without_one(tmp_path: Path) -> None:
    task = sample_task()
    result = codec.encode(TaskResult(task_id=task.id, status="ok", node_id=NODE))
    proof = codec.encode(_proof(task))
    rows = [{"idx": 3, "id": task.id, "task": codec.encode(task), "result": result, "proof": proof},
            {"idx": 4, "id": task.id, "task": None, "result": None, "proof": None}]
    written = write_proofs(tmp_path, rows)
    assert written == {3: tmp_path / f"00003-{task.id}.proof"} and proof_stem(3, task.id) == f"00003-{task.id}"
    for suffix in ("proof", "task", "result"):
        assert stat.S_IMODE((tmp_path / f"00003-{task.id}.{suffix}").stat().st_mode) == 0o600
    assert siblings(written[3]) == (tmp_path / f"00003-{task.id}.task", tmp_path / f"00003-{task.id}.result")
    (tmp_path / f"00003-{task.id}.result").unlink()
    assert siblings(written[3]) == (None, None)
    assert siblings(tmp_path / "x.bin") == (None, None)


def test_verify_uses_the_sibling_task_and_result(cli_runner: CliRunner, tmp_path: Path) -> None:
    task = sample_task()
    rows = [{"idx": 0, "id": task.id, "task": codec.encode(task), "proof": codec.encode(_proof(task)),
             "result": codec.encode(TaskResult(task_id=task.id, status="ok", node_id=NODE))}]
    path = write_proofs(tmp_path, rows)[0]
    run = cli_runner.invoke(cli, ["--plugins", "", "proof", "verify", str(path), "--json"])
    verdict = json.loads(run.output)  # checked against the work: the scheme's prover is missing, not the files
    assert run.exit_code == 6 and "nobody-has-this" in verdict["reason"] and "read only" not in verdict["reason"]


def test_submit_json_answers_a_json_error_when_the_module_is_invalid(cli_runner: CliRunner, tmp_path: Path) -> None:
    module = tmp_path / "bad.wasm"
    module.write_bytes(b"not a wasm module")
    run = cli_runner.invoke(cli, ["task", "submit", str(module), "--entry", "run", "--json"])
    answer = json.loads(run.stdout)
    assert run.exit_code == answer["exit_code"] != 0
    assert answer["error"] and set(answer) == {"error", "hint", "kind", "exit_code"}


def test_submit_json_answers_a_json_error_when_no_node_runs(cli_runner: CliRunner, tmp_path: Path) -> None:
    module = tmp_path / "echo.wasm"
    module.write_bytes(b"\0asm\1\0\0\0")
    cli_runner.invoke(cli, ["init"])
    run = cli_runner.invoke(cli, ["task", "submit", str(module), "--entry", "run", "--json"])
    answer = json.loads(run.stdout)
    assert run.exit_code == answer["exit_code"] != 0 and answer["kind"]


def test_submit_without_json_keeps_the_one_line_error(cli_runner: CliRunner, tmp_path: Path) -> None:
    module = tmp_path / "bad.wasm"
    module.write_bytes(b"not a wasm module")
    run = cli_runner.invoke(cli, ["task", "submit", str(module), "--entry", "run"])
    assert run.exit_code != 0 and run.stdout == "" and run.exception is not None


# ---------------------------------------------------------------- end to end, on real nodes


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Home]]:
    pytest.importorskip("gaia_runner_wasm.workloads")
    with running_devnet(tmp_path_factory.mktemp("devnet"), 2) as started:
        yield started


@pytest.mark.parametrize("where", ["here", "peer"])
def test_result_proofs_writes_files_that_proof_verify_accepts(homes: list[Home], tmp_path: Path,
                                                               where: str) -> None:
    submitter, worker = homes
    tasks = echo_tasks([b"one", b"two"], node_id(submitter))
    job = _run_on(submitter, tasks, node_id(submitter if where == "here" else worker))
    out = tmp_path / "proofs" / "job"
    listed = gaia(submitter, "task", "result", job[:10], "--proofs", str(out), "--json")
    rows = json.loads(listed.stdout)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{i:05d}-{t.id}.{s}" for i, t in enumerate(tasks) for s in ("proof", "result", "task"))
    for row, task in zip(rows, tasks, strict=True):
        assert row["proof_file"] == str(out / f"{row['idx']:05d}-{task.id}.proof")
        claim, _ = read_proof(Path(row["proof_file"]))  # a SealedProof from a peer, a Proof from here
        assert claim.task_id == task.id and claim.node_id == row["node_id"]
        verified = gaia(submitter, "proof", "verify", row["proof_file"], "--json", check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert json.loads(verified.stdout)["status"] == "valid"
        assert gaia(submitter, "proof", "show", row["proof_file"]).stdout.startswith(("scheme", "SIMULATED"))

    text = gaia(submitter, "task", "result", job, "--proofs", str(out), "--release").stdout
    assert f"2 proof(s) written to {out}" in text
    gone = tmp_path / "after-release"
    text = gaia(submitter, "task", "result", job, "--proofs", str(gone)).stdout
    assert "0 proof(s) written" in text and "2 task(s) have no proof kept" in text and not any(gone.iterdir())


def _run_on(submitter: Home, tasks: list[Task], peer: str) -> str:
    """Submit ``tasks`` to run only on ``peer`` and wait for them: the job's id."""
    job: str = call(submitter, "submit", tasks=[codec.encode(t) for t in tasks], name="t", redundancy=1, to=peer)
    assert wait_job(submitter, job)["tasks"] == {"done": len(tasks)}
    return job


def test_result_proofs_in_an_unusable_place_is_one_line(homes: list[Home], tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    proc = gaia(homes[0], "task", "result", "ab", "--proofs", str(tmp_path / "file" / "sub"), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "cannot create" in proc.stderr
