"""Logs and processes: readable log lines on a terminal (JSON in files), ``gaia logs [-f]``, the error line of a
failed ``--detach`` and a hint that works, Ctrl-C during ``devnet up``, unknown job ids, one JSON schema."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaia_core import logs
from gaia_core.config import Home
from tests.nodes import gaia, node_processes, wait_until

workloads = pytest.importorskip("gaia_runner_wasm.workloads")

ENTRY = {"ts": 1700000000.5, "level": "warning", "logger": "gaia.node", "msg": "peer abc is down", "peer": "abc"}


def test_human_lines_on_a_terminal_json_elsewhere() -> None:
    master, replica = os.openpty()
    try:
        with open(replica, "w", closefd=False) as tty:
            logs.configure("info", stream=tty)
            assert isinstance(logging.getLogger("gaia").handlers[0].formatter, logs.HumanLines)
        buffer = io.StringIO()
        logs.configure("info", stream=buffer)
        logging.getLogger("gaia.test").info("hello %s", "there", extra={"job": "j1"})
    finally:
        os.close(master)
        os.close(replica)
        logging.getLogger("gaia").handlers.clear()
    entry = json.loads(buffer.getvalue())
    assert (entry["msg"], entry["job"]) == ("hello there", "j1")
    line = logs.human(ENTRY)
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING gaia\.node: peer abc is down  peer=abc", line), line
    assert logs.render("Error: plain text") == "Error: plain text"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    gaia(home, "init")
    return home


def test_gaia_logs_tail_json_and_missing(home: Home) -> None:
    missing = gaia(home, "logs", check=False)
    assert missing.returncode == 8 and "no log at" in missing.stderr and "Traceback" not in missing.stderr
    home.log_file.write_text(json.dumps(ENTRY) + "\n" + json.dumps({**ENTRY, "msg": "second"}) + "\nError: boom\n")
    shown = gaia(home, "logs", "-n", "2").stdout.splitlines()
    assert shown[0].endswith("gaia.node: second  peer=abc") and shown[1] == "Error: boom"
    assert json.loads(gaia(home, "logs", "-n", "2", "--json").stdout.splitlines()[0]) == {**ENTRY, "msg": "second"}
    assert logs.last_error(home.log_file) == "boom"


def test_a_damaged_log_is_shown_not_a_traceback(home: Home) -> None:
    nested = '{"msg": ' + "[" * 100_000  # json.loads recurses once per bracket
    home.log_file.write_text(f"{nested}\n" + json.dumps({"level": "error", "msg": "the real error"}) + "\n")
    shown = gaia(home, "logs", "-n", "2")
    assert shown.stdout.splitlines()[0] == nested and "the real error" in shown.stdout
    home.log_file.write_text(json.dumps({"level": "error", "msg": "the real error"}) + f"\n{nested}\n")
    assert logs.last_error(home.log_file) == "the real error"


def test_gaia_logs_follow(home: Home) -> None:
    home.log_file.write_text(json.dumps(ENTRY) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "gaia_core", "--home", str(home.root), "logs", "-f", "-n", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # it is reading from the end now (or soon: the line below is written until it shows)
        assert proc.stdout is not None
        with home.log_file.open("a") as log:
            log.write(json.dumps({**ENTRY, "msg": "appended"}) + "\n")
        line = proc.stdout.readline()  # bounded: the process is killed below whatever happens
        assert line.rstrip().endswith("gaia.node: appended  peer=abc")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_follow_survives_the_log_being_removed(home: Home) -> None:
    home.log_file.write_text(json.dumps(ENTRY) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "gaia_core", "--home", str(home.root), "logs", "-f", "-n", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "peer abc is down" in proc.stdout.readline()  # bounded: the process is stopped below
        home.log_file.unlink()
        time.sleep(1.0)  # several polls of the removed file
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "Traceback" not in err, err


def test_follow_waits_for_a_log_that_is_not_there_yet(tmp_path: Path) -> None:
    path = tmp_path / "node.log"
    got: list[str] = []
    follower = threading.Thread(target=lambda: got.append(next(logs.follow(path, poll_s=0.01))), daemon=True)
    follower.start()
    time.sleep(0.3)  # it looks for the file before there is one
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:  # until the follower has opened it and read a line
        with path.open("a") as log:
            log.write("a line\n")
        follower.join(timeout=0.05)
    assert got == ["a line"]


def test_detach_failure_shows_the_error_and_the_hint_works(home: Home) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        failed = gaia(home, "node", "--detach", "--listen", f"tcp://127.0.0.1:{port}", check=False)
    assert failed.returncode == 8
    error = failed.stderr.strip()
    assert "exited during start-up" in error and f"cannot listen on tcp://127.0.0.1:{port}" in error, error
    assert "Address already in use" in error and "Traceback" not in error
    hinted = re.search(r"(tcp://127\.0\.0\.1:\*)", error)
    assert hinted, error
    started = gaia(home, "node", "--detach", "--listen", hinted.group(1))
    try:
        assert "running in the background" in started.stdout
        unknown = gaia(home, "task", "result", "deadbeef", check=False)
        assert unknown.returncode == 9 and "no job 'deadbeef' on this node" in unknown.stderr
        assert "not running" not in unknown.stderr
        module = home.root / "echo.wasm"
        module.write_bytes(workloads.module_bytes("echo"))
        source = home.root / "in.txt"
        source.write_bytes(b"hi\n")
        local = json.loads(gaia(home, "task", "run", str(module), "--input", str(source), "--json").stdout)
        job = json.loads(gaia(home, "task", "submit", str(module), "--input", str(source), "--json").stdout)["job"]
        wait_until(lambda: json.loads(gaia(home, "task", "result", job, "--json").stdout)[0]["state"] == "done",
                   timeout=30, what="the job to finish")
        remote = json.loads(gaia(home, "task", "result", job, "--json").stdout)[0]
        for key in ("status", "message", "output_id", "output_bytes", "output", "output_hex", "fuel_used", "wall_s"):
            assert local[key] == remote[key] or key in ("wall_s", "fuel_used"), key
        assert (local["output"], local["output_hex"]) == ("hi\n", "68690a")
        assert "gaia.node: node started" in gaia(home, "logs").stdout
    finally:
        gaia(home, "stop", check=False)


@pytest.fixture
def devnet_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "devnet"
    yield directory
    for pid in node_processes(directory):  # whatever the test left behind
        os.kill(pid, signal.SIGKILL)


def test_ctrl_c_during_devnet_up_stops_the_nodes_it_started(tmp_path: Path, devnet_dir: Path) -> None:
    home = Home(tmp_path / "home")
    proc = subprocess.Popen([sys.executable, "-m", "gaia_core", "--home", str(home.root), "devnet", "up",
                             "--nodes", "3", "--dir", str(devnet_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (devnet_dir / "node0" / "node.pid").exists() and node_processes(devnet_dir),
                   timeout=30, what="the first node to start")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, err
    assert "node(s) it had started" in err
    assert node_processes(devnet_dir) == []
