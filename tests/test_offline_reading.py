"""``gaia rewards`` and ``gaia task list`` without a running node: state.db read read-only (sqlite mode=ro)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from gaia_core.cli import cli
from gaia_core.commands.node import OFFLINE_NOTE
from gaia_core.config import Home
from gaia_core.control import SOCKET_NAME, ControlServer
from gaia_core.jobs.jobstore import JobStore
from gaia_core.model import Task
from gaia_core.rewards import Credit, Ledger
from gaia_core.store import SCHEMA_VERSION, Store

WORKER = "ab" * 32
SUBMITTER = "cd" * 32


def gaia(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gaia_core`` in a child process with an isolated home."""
    environ = {k: v for k, v in os.environ.items() if k not in {"GAIA_DEBUG", "GAIA_LOAD_PLUGINS"}}
    environ.update(GAIA_HOME=str(home.root), GAIA_BACKEND="python", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "gaia_core", *args], capture_output=True, text=True,
                          env=environ, timeout=120, check=False)


def tasks(count: int) -> list[Task]:
    return [Task.create(b"\0asm\1\0\0\0", input=bytes([i]), entry="run") for i in range(count)]


@pytest.fixture
def recorded(gaia_home: Home) -> Iterator[dict[str, Any]]:
    """A home whose state.db a (stopped) node left: two jobs, ledger rows; what its own queries answer."""
    store = Store(gaia_home.state_db)
    ledger, jobs = Ledger(store), JobStore(store)
    ledger.record(WORKER, Credit("t1", "valid", 1.5, fuel=100, cpu_s=0.25), role="granted")
    ledger.record(WORKER, Credit("t2", "invalid", 0.0, fuel=50), role="granted")
    ledger.record(SUBMITTER, Credit("t3", "valid", 2.0, fuel=300, energy_j=1.0, energy_source="measured"),
                  role="earned")
    jobs.create("aa11", "first", 1, 0.0, tasks(3), None)
    for idx, outcome in ((0, "done"), (1, "failed")):  # as the node records a task's end
        store.execute("UPDATE tasks SET state = ?, updated = updated + 1 WHERE job = 'aa11' AND idx = ?",
                      (outcome, idx))
    jobs.create("bb22", "second", 1, 0.0, tasks(1), None)
    store.execute("UPDATE jobs SET created = created + 10 WHERE id = 'bb22'")  # the newer one
    expected = {"rewards": ledger.summary(),
                "jobs": {j: {"counts": jobs.counts(j), "row": jobs.job(j)} for j in ("aa11", "bb22")}}
    store.close()
    yield expected


def digest(home: Home) -> str:
    return hashlib.sha256(home.state_db.read_bytes()).hexdigest()


# ---------------------------------------------------------------- rewards


def test_rewards_read_from_state_db(cli_runner: CliRunner, gaia_home: Home, recorded: dict[str, Any]) -> None:
    result = cli_runner.invoke(cli, ["rewards", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == recorded["rewards"]  # the same rows the running node answers
    assert result.stderr.strip() == OFFLINE_NOTE == "(node not running: read from state.db)"
    table = cli_runner.invoke(cli, ["rewards"])
    assert table.exit_code == 0 and "granted" in table.stdout and "earned" in table.stdout


def test_task_list_reads_from_state_db(cli_runner: CliRunner, gaia_home: Home, recorded: dict[str, Any]) -> None:
    result = cli_runner.invoke(cli, ["task", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert OFFLINE_NOTE in result.stderr
    jobs = json.loads(result.stdout)
    assert [j["job"] for j in jobs] == ["bb22", "aa11"]  # newest first
    for job in jobs:
        status, name, created, finished = recorded["jobs"][job["job"]]["row"]
        assert job == {"job": job["job"], "name": name, "status": status, "created": created, "finished": finished,
                       "tasks": recorded["jobs"][job["job"]]["counts"],
                       "total": sum(recorded["jobs"][job["job"]]["counts"].values())}
    assert jobs[1]["tasks"] == {"done": 1, "failed": 1, "pending": 1}
    limited = json.loads(cli_runner.invoke(cli, ["task", "list", "--json", "--limit", "1"]).stdout)
    assert [j["job"] for j in limited] == ["bb22"]
    table = cli_runner.invoke(cli, ["task", "list"]).stdout
    assert "first" in table and "done 1, failed 1, pending 1" in table


def test_reading_changes_nothing(cli_runner: CliRunner, gaia_home: Home, recorded: dict[str, Any]) -> None:
    before = digest(gaia_home)
    assert cli_runner.invoke(cli, ["rewards"]).exit_code == 0
    assert cli_runner.invoke(cli, ["task", "list"]).exit_code == 0
    assert digest(gaia_home) == before


def test_an_older_schema_is_read_not_migrated(cli_runner: CliRunner, gaia_home: Home) -> None:
    store = Store(gaia_home.state_db)
    Ledger(store).record(WORKER, Credit("t1", "valid", 1.0), role="granted")
    store.close()
    db = sqlite3.connect(gaia_home.state_db)
    db.execute("DROP TABLE unsettled")
    db.execute("PRAGMA user_version = 1")
    db.close()
    result = cli_runner.invoke(cli, ["rewards", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["credit"] == 1.0
    db = sqlite3.connect(gaia_home.state_db)
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    db.close()


def test_without_state_db_nothing_is_recorded_and_none_is_made(cli_runner: CliRunner, gaia_home: Home) -> None:
    result = cli_runner.invoke(cli, ["rewards"])
    assert result.exit_code == 0 and "none yet" in result.stdout
    assert "nothing recorded yet" in result.stderr
    assert json.loads(cli_runner.invoke(cli, ["task", "list", "--json"]).stdout) == []
    assert not gaia_home.state_db.exists()


def test_a_newer_schema_is_one_line_and_exit_8(gaia_home: Home) -> None:
    Store(gaia_home.state_db).close()
    db = sqlite3.connect(gaia_home.state_db)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    proc = gaia(gaia_home, "rewards")
    assert proc.returncode == 8 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "newer than this GAIA knows" in errors[0]


def test_a_file_that_is_not_a_database_is_one_line(gaia_home: Home) -> None:
    gaia_home.state_db.write_bytes(b"this is not sqlite" * 100)
    proc = gaia(gaia_home, "task", "list")
    assert proc.returncode == 8 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "cannot read" in errors[0] and "state.db" in errors[0]


def test_a_directory_in_place_of_state_db_is_one_line(gaia_home: Home) -> None:
    gaia_home.state_db.mkdir()
    proc = gaia(gaia_home, "rewards")
    assert proc.returncode == 8 and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("Error:")]) == 1


def test_a_stale_socket_counts_as_no_node(cli_runner: CliRunner, gaia_home: Home, recorded: dict[str, Any]) -> None:
    """A node killed with -9 leaves its socket file; nothing answers there, so state.db is read."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(gaia_home.root / SOCKET_NAME))
    sock.close()
    result = cli_runner.invoke(cli, ["rewards", "--json"])
    assert result.exit_code == 0 and OFFLINE_NOTE in result.stderr
    assert json.loads(result.stdout) == recorded["rewards"]


# ---------------------------------------------------------------- a running node is asked first


def test_a_running_node_answers_instead(cli_runner: CliRunner, gaia_home: Home, recorded: dict[str, Any]) -> None:
    live_rewards = [{**recorded["rewards"][0], "tasks": 99}]
    live_jobs = [{"job": "ff00", "name": "live", "status": "running", "created": 0.0, "finished": None,
                  "tasks": {"pending": 1}, "total": 1}]
    server = ControlServer(gaia_home.make_private(),
                           {"rewards": lambda: live_rewards, "jobs": lambda limit=20: live_jobs[:limit]})
    server.start()
    try:
        rewards = cli_runner.invoke(cli, ["rewards", "--json"])
        listed = cli_runner.invoke(cli, ["task", "list", "--json"])
    finally:
        server.stop()
    assert json.loads(rewards.stdout) == live_rewards and OFFLINE_NOTE not in rewards.stderr
    assert json.loads(listed.stdout) == live_jobs and OFFLINE_NOTE not in listed.stderr
