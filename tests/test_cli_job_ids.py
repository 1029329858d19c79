"""Job ids on the command line: an unknown, ambiguous or malformed one is exit 9 with one line (not the
"node not running" 8), and ``gaia task result`` reads state.db read-only when no node runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gaia_core import codec
from gaia_core.cli import cli, main
from gaia_core.commands.node import OFFLINE_NOTE
from gaia_core.config import Home
from gaia_core.jobs.jobstore import JobStore, UnknownJobError
from gaia_core.model import Proof, Task, TaskResult, TaskState
from gaia_core.store import Store

NODE = "ab" * 32


@pytest.fixture
def recorded(gaia_home: Home) -> list[Task]:
    """A home a stopped node left: job aa11 (task 0 done with a proof, task 1 failed), job aa22 (pending)."""
    tasks = [Task.create(b"\0asm\1\0\0\0", input=bytes([i]), entry="run") for i in range(2)]
    store = Store(gaia_home.state_db)
    jobs = JobStore(store)
    jobs.create("aa11", "first", 1, 0.0, tasks, None)
    jobs.create("aa22", "second", 1, 0.0, tasks[:1], None)
    done = TaskResult(tasks[0].id, "ok", node_id=NODE, output=b"hello\n", output_id="cd" * 32, fuel_used=42)
    proof = Proof("mock", tasks[0].id, NODE, commitment=b"c", body=b"b")
    jobs.finish_task("aa11", 0, TaskState.DONE, result=done, peers=NODE, attempts=1, proof=proof)
    jobs.finish_task("aa11", 1, TaskState.FAILED, reason="trap: unreachable", attempts=1)
    store.close()
    return tasks


def digest(home: Home) -> str:
    return hashlib.sha256(home.state_db.read_bytes()).hexdigest()


def test_task_result_reads_state_db_without_a_node(cli_runner: CliRunner, gaia_home: Home, recorded: list[Task],
                                                   tmp_path: Path) -> None:
    before = digest(gaia_home)
    shown = cli_runner.invoke(cli, ["task", "result", "aa11", "--json"])
    assert shown.exit_code == 0, shown.output
    assert OFFLINE_NOTE in shown.stderr
    rows = json.loads(shown.stdout)
    assert [(r["job"], r["idx"], r["state"]) for r in rows] == [("aa11", 0, "done"), ("aa11", 1, "failed")]
    assert rows[0]["output"] == "hello\n" and rows[0]["fuel_used"] == 42 and rows[1]["reason"].startswith("trap")
    table = cli_runner.invoke(cli, ["task", "result", "AA1", "--output", str(tmp_path / "out"),
                                    "--proofs", str(tmp_path / "proofs")])
    assert table.exit_code == 0, table.output
    assert "job aa11 (first): running, done 1, failed 1" in table.stdout  # as the node's answer reads
    assert (tmp_path / "out" / "00000.out").read_bytes() == b"hello\n"
    (proof_file,) = (tmp_path / "proofs").glob("*.proof")
    assert codec.decode(proof_file.read_bytes(), Proof).task_id == recorded[0].id
    assert digest(gaia_home) == before  # read-only


@pytest.mark.parametrize(("job", "message"), [
    ("0000", "no job '0000' on this node"),
    ("aa", "job id prefix 'aa' is ambiguous"),
    ("XYZ", "'XYZ' is not a job id"),
])
def test_an_unknown_job_is_exit_9_not_node_not_running(recorded: list[Task], job: str, message: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_of(["task", "result", job]) == UnknownJobError.exit_code == 9
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0] and "not running" not in errors[0]


def test_release_without_a_node_is_refused_and_changes_nothing(gaia_home: Home, recorded: list[Task],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    before = digest(gaia_home)
    assert exit_of(["task", "result", "aa11", "--release"]) == 2
    assert "no node is running" in capsys.readouterr().err
    assert digest(gaia_home) == before


def exit_of(argv: list[str]) -> int:
    """The exit status of ``gaia ARGV`` run in this process, as the ``gaia`` script runs it."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return int(exited.value.code or 0)
