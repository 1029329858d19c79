"""Local privacy: the home 0700 and its files 0600 whatever the umask, the control socket in a private directory,
no payload byte left after a job is pruned."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from nodes import call, echo_tasks, gaia, node_id, results, running_devnet, submit, wait_job, wait_until

from gaia_core import config as config_mod, devnet
from gaia_core.cli import cli
from gaia_core.config import Home
from gaia_core.control import ControlClient, ControlServer
from gaia_core.errors import NodeError
from gaia_core.identity import SIGNING_FILE, Identity
from gaia_core.store import Store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: every file created in the test is world-writable unless GAIA sets its mode."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_init_under_an_open_umask_makes_the_home_private(open_umask: None, tmp_path: Path) -> None:
    home = Home(tmp_path / "new-home")
    result = CliRunner().invoke(cli, ["--home", str(home.root), "init"])
    assert result.exit_code == 0, result.output
    assert mode(home.root) == mode(home.identity_dir) == 0o700
    assert mode(home.identity_dir / SIGNING_FILE) == 0o600
    assert mode(home.config_file) == 0o600


def test_state_db_and_its_journals_are_private_under_an_open_umask(open_umask: None, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = Store(path)
    store.execute("INSERT INTO stats VALUES ('k', 1.0)")  # the WAL and its index now exist
    files = [path, path.with_name("state.db-wal"), path.with_name("state.db-shm")]
    assert [mode(p) for p in files] == [0o600] * 3
    store.close()


def test_a_node_tightens_a_home_an_older_gaia_left_readable(tmp_path: Path) -> None:
    home = Home(tmp_path / "old-home")
    Identity.generate().save(home.identity_dir)
    Store(home.state_db).close()
    home.config_file.write_text('[node]\nlisten = "tcp://127.0.0.1:0"\n')
    home.log_file.write_text("")
    for path in (home.state_db, home.config_file, home.log_file):
        path.chmod(0o644)
    home.root.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in {"GAIA_LOAD_PLUGINS", "GAIA_DEBUG", "PYTHONPATH"}}
    env.update(GAIA_HOME=str(home.root), GAIA_BACKEND="python")
    command = [sys.executable, "-m", "gaia_core"]
    started = subprocess.run([*command, "node", "--detach"], env=env, capture_output=True, text=True, timeout=90)
    try:
        assert started.returncode == 0, started.stderr
        assert mode(home.root) == 0o700
        state_files = [home.state_db, home.state_db.with_name("state.db-wal"), home.state_db.with_name("state.db-shm")]
        assert [mode(p) for p in (*state_files, home.config_file, home.log_file)] == [0o600] * 5
    finally:
        stopped = subprocess.run([*command, "stop"], env=env, capture_output=True, text=True, timeout=60)
        if stopped.returncode != 0 and (home.root / "node.pid").exists():
            os.kill(int((home.root / "node.pid").read_text()), signal.SIGKILL)
    assert stopped.returncode == 0, stopped.stderr


def test_a_new_log_file_is_private_under_an_open_umask(open_umask: None, tmp_path: Path) -> None:
    from gaia_core import logs

    with logs.open_log(tmp_path / "node.log") as log:
        log.write(b"{}\n")
    assert mode(tmp_path / "node.log") == 0o600


# ---------------------------------------------------------------- the control socket


@pytest.fixture
def long_home(tmp_path: Path) -> Home:
    """A private home whose path is too long for a Unix socket in it."""
    home = Home(tmp_path / ("h" * 60) / ("o" * 60))
    return home.make_private()


def test_a_long_home_path_serves_from_a_fresh_private_directory(long_home: Home) -> None:
    server = ControlServer(long_home, {"echo": lambda text: text})
    server.start()
    first = server.path.parent
    try:
        assert first != long_home.root and mode(first) == 0o700 and first.stat().st_uid == os.geteuid()
        assert long_home.control_record.read_text() == str(first) and mode(long_home.control_record) == 0o600
        with ControlClient(long_home) as client:
            assert client.call("echo", text="hi") == "hi"
    finally:
        server.stop()
    assert not first.exists() and not long_home.control_record.exists()
    again = ControlServer(long_home, {})
    try:
        assert again.path.parent != first  # not a name another user could guess and create first
    finally:
        again.stop()


def test_a_server_that_died_leaves_a_directory_the_next_one_cleans_up(long_home: Home) -> None:
    dead = ControlServer(long_home, {})
    dead._server.server_close()  # died without stop(): socket, directory and record are left behind
    left = dead.path.parent
    server = ControlServer(long_home, {"echo": lambda text: text})
    server.start()
    try:
        assert not left.exists()
        with ControlClient(long_home) as client:
            assert client.call("echo", text="new") == "new"
    finally:
        server.stop()


def _planted(directory: Path) -> socket.socket:
    """A listening socket another user could have put in ``directory``."""
    planted = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    planted.bind(str(directory / "control.sock"))
    planted.listen()
    return planted


def test_a_client_refuses_a_socket_in_a_directory_others_can_write(long_home: Home, tmp_path: Path) -> None:
    shared = tmp_path / "s"
    shared.mkdir()
    shared.chmod(0o777)
    planted = _planted(shared)
    long_home.control_record.write_text(str(shared))
    try:
        with pytest.raises(NodeError, match="refusing the control socket .* mode 777"):
            ControlClient(long_home, timeout=1.0)
        server = ControlServer(long_home, {})  # the node does not serve from there either
        assert server.path.parent != shared and (shared / "control.sock").exists()
        server.stop()
    finally:
        planted.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory owned by another user")
def test_a_client_refuses_a_socket_in_a_directory_of_another_user(long_home: Home, tmp_path: Path) -> None:
    other = tmp_path / "o"
    other.mkdir(mode=0o700)
    planted = _planted(other)
    os.chown(other, 65534, 65534)
    long_home.control_record.write_text(str(other))
    try:
        with pytest.raises(NodeError, match="owner uid 65534"):
            ControlClient(long_home, timeout=1.0)
    finally:
        planted.close()


def test_a_server_refuses_a_home_others_can_enter(gaia_home: Home) -> None:
    gaia_home.root.chmod(0o755)
    with pytest.raises(NodeError, match="chmod 700"):
        ControlServer(gaia_home, {})



# ---------------------------------------------------------------- retention of finished jobs


def _leaks(directory: Path, marker: bytes) -> list[str]:
    """Every file under ``directory`` holding ``marker``."""
    return [str(p) for p in directory.rglob("*") if p.is_file() and marker in p.read_bytes()]


def test_no_input_byte_is_left_after_release_gaia_prune_or_the_retention(tmp_path: Path) -> None:
    pytest.importorskip("gaia_runner_wasm.workloads")
    directory = tmp_path / "devnet"
    first, second = (b"GAIA-RETENTION-" + os.urandom(10).hex().encode() for _ in range(2))
    with running_devnet(directory, 1, extra={"privacy": {"job_retention_s": 3600.0}}) as (home,):
        jobs = []
        for marker in (first, second):
            payloads = [marker + f" task {i}".encode() for i in range(4)]
            jobs.append(submit(home, echo_tasks(payloads, node_id(home))))
            assert wait_job(home, jobs[-1])["tasks"] == {"done": 4}
            assert [r["result"].output for r in results(home, jobs[-1])] == payloads  # fetched, not released
        assert _leaks(home.root, first)  # the scan finds what is kept

        assert json.loads(gaia(home, "prune", "--json").stdout)["jobs"] == []  # finished within the retention
        pruned = json.loads(gaia(home, "prune", "--older-than", "0", "--json").stdout)
        assert set(pruned["jobs"]) == set(jobs)
        assert [r["result"] for r in results(home, jobs[0])] == [None] * 4
        assert _leaks(home.root, first) == _leaks(home.root, second) == []  # while the node runs

        released = b"GAIA-RELEASED-" + os.urandom(10).hex().encode()
        job = submit(home, echo_tasks([released], node_id(home)))
        assert wait_job(home, job)["tasks"] == {"done": 1}
        assert results(home, job, release=True)[0]["result"].output == released
        wait_until(lambda: not _leaks(home.root, released), timeout=5, what="released bytes to leave the disk")

        third = b"GAIA-RETENTION-" + os.urandom(10).hex().encode()
        job = submit(home, echo_tasks([third], node_id(home)))
        assert wait_job(home, job)["tasks"] == {"done": 1}
        gaia(home, "stop")
        tables = tomllib.loads(home.config_file.read_text())
        tables["privacy"]["job_retention_s"] = 0.0
        home.config_file.write_text(config_mod.to_toml(tables))
        devnet.start_node(home)  # its housekeeping applies the retention from its first round
        wait_until(lambda: results(home, job)[0]["result"] is None, timeout=15, what="the retention to prune the job")
    assert _leaks(directory, third) == []


@pytest.mark.parametrize("record", [b"", b"relative/dir", b"\xff\xfe not text"])
def test_a_malformed_socket_record_means_no_node(long_home: Home, record: bytes) -> None:
    long_home.control_record.write_bytes(record)
    with pytest.raises(NodeError, match="no node is running"):
        ControlClient(long_home, timeout=1.0)


# ---------------------------------------------------------------- every way a job ends, then every purge


def _cancelled(home: Home, submitter: str, marker: bytes) -> str:
    """A job of tasks that keep a core busy, cancelled by its owner while they run or wait."""
    from test_lifecycle import spin_tasks

    job = submit(home, spin_tasks(submitter, [marker + f" task {i}".encode() for i in range(4)]))
    assert call(home, "cancel", job=job)["status"] == "cancelled"
    return job


def _expired(home: Home, submitter: str, marker: bytes) -> str:
    """A job whose one task's deadline has passed by the time any node could run it."""
    from test_lifecycle import trap_task

    job = submit(home, [trap_task(submitter, marker, deadline=time.time())])
    wait_until(lambda: call(home, "job", job=job)["status"] == "finished", timeout=20, what=f"job {job} to expire")
    assert [r["reason"][:8] for r in results(home, job)] == ["expired:"]
    return job


def _failed(home: Home, submitter: str, marker: bytes) -> str:
    """A job whose one task traps (a final failure)."""
    from test_lifecycle import trap_task

    job = submit(home, [trap_task(submitter, marker)])
    wait_until(lambda: call(home, "job", job=job)["status"] == "finished", timeout=20, what=f"job {job} to fail")
    assert [r["reason"][:5] for r in results(home, job)] == ["trap:"]
    return job


ENDINGS = {"cancel": _cancelled, "expiry": _expired, "failure": _failed}


def test_no_input_byte_is_left_after_cancel_expiry_or_failure_once_released_pruned_or_retained(tmp_path: Path) -> None:
    pytest.importorskip("gaia_runner_wasm.workloads")
    directory = tmp_path / "devnet"
    markers = {(ending, purge): f"GAIA-{ending}-{purge}-{os.urandom(8).hex()}".encode()
               for ending in ENDINGS for purge in ("release", "prune", "retention")}
    with running_devnet(directory, 1, extra={"privacy": {"job_retention_s": 3600.0}, "node": {"cores": 1}}) as (home,):
        me = node_id(home)

        def end_all(purge: str) -> dict[str, str]:
            jobs = {ending: end(home, me, markers[ending, purge]) for ending, end in ENDINGS.items()}
            for ending in ENDINGS:  # the scan finds what is kept until a purge
                assert _leaks(home.root, markers[ending, purge]), f"{ending}: no input bytes found before the purge"
            return jobs

        for ending, job in end_all("release").items():
            assert all(r["state"] != "pending" for r in results(home, job, release=True))
            wait_until(lambda marker=markers[ending, "release"]: not _leaks(home.root, marker), timeout=5,
                       what=f"the released input bytes of the {ending} job to leave the disk")

        jobs = end_all("prune")
        pruned = json.loads(gaia(home, "prune", "--older-than", "0", "--json").stdout)
        assert set(jobs.values()) <= set(pruned["jobs"])
        assert [ending for ending in ENDINGS if _leaks(home.root, markers[ending, "prune"])] == []

        end_all("retention")
        gaia(home, "stop")
        tables = tomllib.loads(home.config_file.read_text())
        tables["privacy"]["job_retention_s"] = 0.0
        home.config_file.write_text(config_mod.to_toml(tables))
        devnet.start_node(home)  # its housekeeping applies the retention from its first round
        for ending in ENDINGS:
            wait_until(lambda marker=markers[ending, "retention"]: not _leaks(home.root, marker), timeout=15,
                       what=f"the retention to delete the input bytes of the {ending} job")
    assert [key for key, marker in markers.items() if _leaks(directory, marker)] == []
