"""Contributor controls: pause and resume, a CPU cap, ``--watch``, the earnings summary, a systemd user
unit and shell completion."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaia_core.commands.service import UNIT
from gaia_core.config import Home, NodeSection
from tests.nodes import detached_node, gaia, wait_until

workloads = pytest.importorskip("gaia_runner_wasm.workloads")


@pytest.fixture(scope="module")
def node_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    with detached_node(tmp_path_factory.mktemp("contributor")) as home:
        yield home


def status(home: Home) -> dict:
    return json.loads(gaia(home, "status", "--json").stdout)


def test_pause_holds_own_tasks_until_resume_across_a_restart(node_home: Home, tmp_path: Path) -> None:
    module = tmp_path / "echo.wasm"
    module.write_bytes(workloads.module_bytes("echo"))
    assert "paused:" in gaia(node_home, "pause").stdout
    assert status(node_home)["paused"] is True and node_home.pause_file.exists()
    gaia(node_home, "stop")
    gaia(node_home, "node", "--detach", "--listen", "tcp://127.0.0.1:*")
    assert status(node_home)["paused"] is True  # still paused after the restart
    assert "PAUSED" in gaia(node_home, "status").stdout
    job = json.loads(gaia(node_home, "task", "submit", str(module), "--json").stdout)["job"]
    time.sleep(1.5)  # a worker would have run it long since
    assert json.loads(gaia(node_home, "task", "result", job, "--json").stdout)[0]["state"] != "done"
    assert "resumed" in gaia(node_home, "resume").stdout
    assert status(node_home)["paused"] is False and not node_home.pause_file.exists()
    wait_until(lambda: json.loads(gaia(node_home, "task", "result", job, "--json").stdout)[0]["state"] == "done",
               timeout=30, what="the held task to run after resume")
    summary = gaia(node_home, "rewards").stdout.splitlines()
    assert summary[0].startswith("granted ") and "credit for" in summary[0] and "(1 verified)" in summary[0]


def test_watch_redraws_status_and_peers(node_home: Home) -> None:
    lines = gaia(node_home, "status", "--watch", "--json", "--interval", "0.1", "--count", "3").stdout.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["node_id"] for line in lines)
    shown = gaia(node_home, "peers", "--watch", "--interval", "0.1", "--count", "2").stdout
    assert shown.count("no peers yet") == 2


@pytest.mark.parametrize(("cores", "percent", "logical", "runs"), [
    (0, 100, 8, 8), (0, 50, 8, 4), (6, 50, 8, 4), (2, 50, 8, 2), (0, 10, 4, 1), (12, 100, 8, 12)])
def test_cpu_cap(monkeypatch: pytest.MonkeyPatch, cores: int, percent: int, logical: int, runs: int) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: logical)
    assert NodeSection(cores=cores, cpu_percent=percent).task_cores() == runs


def test_cpu_cap_is_validated(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    gaia(home, "init")
    refused = gaia(home, "config", "set", "node.cpu_percent", "0", check=False)
    assert refused.returncode != 0 and "cpu_percent" in refused.stderr and "Traceback" not in refused.stderr
    gaia(home, "config", "set", "node.cpu_percent", "50")


def test_service_install_writes_a_valid_user_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "home with space")
    gaia(home, "init")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    done = gaia(home, "service", "install")
    unit = tmp_path / "xdg" / "systemd" / "user" / "gaia-node.service"
    assert f"wrote {unit}" in done.stdout and "systemctl --user enable --now gaia-node.service" in done.stdout
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read(unit)
    assert parsed["Service"]["ExecStart"] == f'"{sys.executable}" "-m" "gaia_core" "--home" "{home.root}" "node"'
    assert parsed["Install"]["WantedBy"] == "default.target"
    if shutil.which("systemd-analyze"):
        verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                                  timeout=60)
        assert verified.returncode == 0, verified.stderr
    assert gaia(home, "service", "install").returncode == 0  # the same unit again: fine
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    other = gaia(home, "service", "install", check=False)
    assert other.returncode == 2 and "--force" in other.stderr
    gaia(home, "service", "install", "--force")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(unit))  # a file where the directory belongs
    refused = gaia(home, "service", "install", check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"Error: cannot write {unit}/systemd/user/{UNIT}: Not a directory" in refused.stderr


def test_shell_completion(tmp_path: Path) -> None:
    env = {**os.environ, "GAIA_HOME": str(tmp_path), "COMP_WORDS": "gaia sta", "COMP_CWORD": "1",
           "_GAIA_COMPLETE": "bash_complete"}
    words = subprocess.run([sys.executable, "-m", "gaia_core"], env=env, capture_output=True, text=True, timeout=60)
    assert "plain,status" in words.stdout.splitlines()
    script = subprocess.run([sys.executable, "-m", "gaia_core"], env={**env, "_GAIA_COMPLETE": "bash_source"},
                            capture_output=True, text=True, timeout=60)
    assert "_gaia_completion()" in script.stdout
