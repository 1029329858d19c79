"""``gaia devnet down`` and a stale pid file: a node killed with -9 leaves ``node.pid`` behind, and its pid may
go to another program, which must not be signalled; a node started with a relative ``--dir`` is still its own."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaia_core import devnet
from gaia_core.config import Home
from tests.nodes import wait_until


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def node_dir(tmp_path: Path, pid: int) -> Path:
    (tmp_path / "devnet" / "node0").mkdir(parents=True)
    (tmp_path / "devnet" / "node0" / "node.pid").write_text(str(pid))
    return tmp_path / "devnet"


def test_a_pid_file_naming_another_program_signals_nothing(tmp_path: Path,
                                                           processes: list[subprocess.Popen]) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    processes.append(other)
    directory = node_dir(tmp_path, other.pid)
    assert devnet.down(directory, timeout=5) == 0
    assert other.poll() is None  # still running: it was never this devnet's node
    done = subprocess.run([sys.executable, "-m", "gaia_core", "devnet", "down", "--dir", str(directory)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "stopped 0 node(s)" in done.stdout and other.poll() is None


def test_a_node_started_with_a_relative_home_is_stopped(tmp_path: Path, processes: list[subprocess.Popen]) -> None:
    script = tmp_path / "gaia"  # stands for the gaia script: a node of devnet/node0, named relative to its cwd
    script.write_text("import time\ntime.sleep(60)\n")
    node = subprocess.Popen([sys.executable, str(script), "--home", "devnet/node0", "node"], cwd=tmp_path)
    processes.append(node)
    directory = node_dir(tmp_path, node.pid)
    wait_until(lambda: b"--home" in Path(f"/proc/{node.pid}/cmdline").read_bytes(), timeout=10,
               what="the stand-in node to start")
    assert devnet.down(directory, timeout=5) == 1
    assert not (directory / "node0" / "node.pid").exists()
    wait_until(lambda: not Path(f"/proc/{node.pid}").exists(), timeout=10, what="the node to be stopped")


def test_later_nodes_start_with_the_first_nodes_cached_report(tmp_path: Path) -> None:
    first, other = Home(tmp_path / "node0"), Home(tmp_path / "node1")
    first.cache_dir.mkdir(parents=True)
    (first.cache_dir / "bench-psutil.json").write_text("measured once")
    (first.cache_dir / "wasm").mkdir()  # directories (compiled modules) stay with their node
    other.cache_dir.mkdir(parents=True)
    (other.cache_dir / "kept.json").write_text("its own")
    devnet._share_cache(first, other)
    assert (other.cache_dir / "bench-psutil.json").read_text() == "measured once"
    assert not (other.cache_dir / "wasm").exists() and (other.cache_dir / "kept.json").read_text() == "its own"
    (first.cache_dir / "kept.json").write_text("not copied over a file the node has")
    devnet._share_cache(first, other)
    assert (other.cache_dir / "kept.json").read_text() == "its own"
