"""Helpers for the end-to-end tests: real devnets in a test's directory, jobs through a node's control socket.

Every wait here is bounded in time; every devnet is stopped by the context manager that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gaia_core import codec, devnet
from gaia_core.commands.jobs import decode_results
from gaia_core.config import Home
from gaia_core.control import ControlClient
from gaia_core.identity import Identity
from gaia_core.model import Limits, Task

#: Proofs without the simulated proving delay: the tests exercise the protocol, not the timing.
FAST_PROVER = {"zk_mock": {"simulate_time": False}}


@contextmanager
def running_devnet(directory: Path, nodes: int = 3, *, extra: Mapping[str, Mapping[str, Any]] | None = None,
                   overrides: Mapping[int, Mapping[str, Mapping[str, Any]]] | None = None) -> Iterator[list[Home]]:
    """A devnet of ``nodes`` real processes whose peers all see each other; always stopped afterwards."""
    try:
        devnet.up(directory, nodes, extra={**FAST_PROVER, **(extra or {})}, overrides=overrides)
        devnet.wait_for_peers(directory)
        yield devnet.homes(directory)
    finally:
        devnet.down(directory, timeout=10.0)


def node_id(home: Home) -> str:
    """The node id of the node living in ``home``."""
    return Identity.load(home.identity_dir).node_id


def pid(home: Home) -> int:
    """The process id of the node living in ``home`` (from its pid file)."""
    return int((home.root / "node.pid").read_text())


def kill(home: Home) -> None:
    """``kill -9`` the node living in ``home`` and wait until it is gone."""
    node_pid = pid(home)
    os.kill(node_pid, signal.SIGKILL)
    try:
        os.waitpid(node_pid, 0)  # devnet nodes are this process's children
    except ChildProcessError:
        wait_until(lambda: not Path(f"/proc/{node_pid}").exists(), timeout=10, what=f"process {node_pid} to exit")


def call(home: Home, method: str, **params: Any) -> Any:
    """One control-socket call to the node in ``home``."""
    with ControlClient(home, timeout=30.0) as client:
        return client.call(method, **params)


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it is truthy (returning its value); AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def submit(home: Home, tasks: list[Task], *, redundancy: int = 1, name: str = "test") -> str:
    """Submit ``tasks`` as one job through the node in ``home``; return the job id."""
    return call(home, "submit", tasks=[codec.encode(t) for t in tasks], name=name, redundancy=redundancy)


def wait_job(home: Home, job: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """Wait for a job to finish; return its final status."""
    wait_until(lambda: call(home, "job", job=job)["status"] == "finished", timeout=timeout, what=f"job {job}")
    return call(home, "job", job=job)


def results(home: Home, job: str, *, release: bool = False) -> list[dict[str, Any]]:
    """A job's rows, in task order, with each TaskResult decoded (``None`` for failed tasks)."""
    return decode_results(call(home, "results", job=job, release=release))


def run_job(home: Home, tasks: list[Task], *, redundancy: int = 1, timeout: float = 60.0,
            release: bool = False) -> list[dict[str, Any]]:
    """Submit, wait, and return the rows; asserts every task ended ``done`` with an ok result."""
    job = submit(home, tasks, redundancy=redundancy)
    status = wait_job(home, job, timeout=timeout)
    rows = results(home, job, release=release)
    assert status["tasks"] == {"done": len(tasks)}, [(r["state"], r["reason"]) for r in rows if r["state"] != "done"]
    assert all(r["result"].ok for r in rows)
    return rows


def echo_tasks(payloads: list[bytes], submitter: str, **limits: Any) -> list[Task]:
    """Tasks returning their input unchanged (the shipped ``echo`` module)."""
    from gaia_runner_wasm import workloads

    return [Task.create(workloads.module_bytes("echo"), entry="echo", input=p, submitter=submitter,
                        limits=Limits(**limits)) for p in payloads]


def slow_tasks(submitter: str, count: int, *, epochs: int = 600) -> list[Task]:
    """Compute-bound tasks with small inputs: SGD on 150 digits, ~0.05 s of WASM per 100 epochs, distinct ids."""
    from gaia_runner_wasm import workloads

    shard = workloads.load_digits().shards(12)[0]
    model = workloads.Mlp.init(workloads.DIGITS_FEATURES, 32, workloads.DIGITS_CLASSES)
    return [workloads.train_task(model, shard.x, shard.y, epochs=epochs, seed=i, submitter=submitter,
                                 limits=Limits(timeout_s=30.0)) for i in range(count)]


def ledger_rows(home: Home, role: str) -> dict[str, dict[str, Any]]:
    """The node's ledger summary for ``role``, by node id."""
    return {row["node_id"]: row for row in call(home, "rewards") if row["role"] == role}


def gaia(home: Home, *args: str, timeout: float = 60.0, check: bool = True) -> subprocess.CompletedProcess:
    """Run the ``gaia`` CLI in a subprocess against ``home``."""
    proc = subprocess.run([sys.executable, "-m", "gaia_core", "--home", str(home.root), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "GAIA_HOME": str(home.root)}, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, f"gaia {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


@contextmanager
def detached_node(directory: Path) -> Iterator[Home]:
    """A home under ``directory`` whose node runs detached on a free loopback port; always stopped afterwards."""
    home = Home(directory / "home")
    gaia(home, "init")
    gaia(home, "node", "--detach", "--listen", "tcp://127.0.0.1:*")
    try:
        yield home
    finally:
        gaia(home, "stop", check=False)


def node_processes(directory: Path) -> list[int]:
    """Pids of live processes whose command line names a home under ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(arg.startswith(str(directory).encode()) for arg in cmdline):
            found.append(int(entry.name))
    return found
