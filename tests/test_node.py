"""The node end to end: real node processes on 127.0.0.1 (gaia_core.devnet), jobs, the CLI, restarts, privacy."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodes import (
    call,
    echo_tasks,
    gaia,
    kill,
    ledger_rows,
    node_id,
    results,
    run_job,
    running_devnet,
    slow_tasks,
    submit,
    wait_job,
    wait_until,
)

from gaia_core import codec, devnet
from gaia_core.config import Home
from gaia_core.model import Task

workloads = pytest.importorskip("gaia_runner_wasm.workloads")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Home]]:
    """One devnet of 3 nodes shared by the tests that only submit jobs to it."""
    with running_devnet(tmp_path_factory.mktemp("devnet")) as homes:
        yield homes


def _matmul(a: list[float], b: list[float], m: int, k: int, n: int) -> list[float]:
    return [sum(a[i * k + j] * b[j * n + c] for j in range(k)) for i in range(m) for c in range(n)]


def test_job_across_three_nodes_matches_local_expectations(net: list[Home]) -> None:
    submitter = node_id(net[0])
    rng = random.Random(7)
    echo_inputs = [f"echo {i}".encode() for i in range(24)]
    upper_inputs = [f"hello gaia {i}".encode() for i in range(6)]
    matrices = [([rng.uniform(-1, 1) for _ in range(12)], [rng.uniform(-1, 1) for _ in range(20)]) for _ in range(6)]
    tasks = (echo_tasks(echo_inputs, submitter)
             + [Task.create(workloads.module_bytes("upper"), entry="_start", input=p, submitter=submitter)
                for p in upper_inputs]
             + [workloads.matmul_task(a, b, 3, 4, 5, submitter=submitter) for a, b in matrices])

    rows = run_job(net[0], tasks)

    outputs = [r["result"].output for r in rows]
    assert outputs[:24] == echo_inputs
    assert outputs[24:30] == [p.upper() for p in upper_inputs]
    for (a, b), output in zip(matrices, outputs[30:], strict=True):
        assert list(workloads.decode_matrix(output)) == pytest.approx(_matmul(a, b, 3, 4, 5), abs=1e-5)
    assert {r["result"].node_id for r in rows} == {node_id(h) for h in net}
    granted = ledger_rows(net[0], "granted")
    assert set(granted) == {node_id(h) for h in net}
    assert all(row["credit"] > 0 for row in granted.values())


def test_redundancy_two_reaches_quorum_on_two_distinct_nodes(net: list[Home]) -> None:
    payloads = [f"replicated {i}".encode() for i in range(8)]
    rows = run_job(net[0], echo_tasks(payloads, node_id(net[0])), redundancy=2)

    assert [r["result"].output for r in rows] == payloads
    for row in rows:
        replicas = row["peers"].split(",")
        assert len(replicas) == len(set(replicas)) == 2
    assert call(net[0], "status")["verification"].get("verdicts.valid", 0) >= 16


def test_cli_against_a_live_node(net: list[Home], tmp_path: Path) -> None:
    home = Home(tmp_path / "cli-node")
    gaia(home, "init", "--name", "cli-node")
    bootstrap = call(net[0], "status")["address"]  # tcp://HOST:PORT#CURVE_KEY
    started = gaia(home, "node", "--detach", "--listen", f"tcp://127.0.0.1:{devnet.free_port()}",
                   "--bootstrap", bootstrap, "--cores", "1")
    assert "running in the background" in started.stdout
    try:
        wait_until(lambda: json.loads(gaia(home, "status", "--json").stdout)["peers"]["up"] >= 3,
                   timeout=30, what="the CLI node to see the devnet")
        status = json.loads(gaia(home, "status", "--json").stdout)
        assert status["name"] == "cli-node" and status["node_id"] == node_id(home)
        peers = json.loads(gaia(home, "peers", "--json").stdout)
        assert {node_id(h) for h in net} <= {p["node_id"] for p in peers if p["state"] == "up"}
        registered = json.loads(gaia(home, "register", "--json").stdout)
        assert registered["record"]["node_id"] == node_id(home) and len(registered["known_by"]) >= 3
        doctor = json.loads(gaia(home, "doctor", "--json").stdout)
        assert {c["check"]: c["outcome"] for c in doctor}["peers"] == "ok"

        inputs = []
        for i in range(3):
            path = tmp_path / f"in{i}.txt"
            path.write_bytes(f"cli input {i}".encode())
            inputs += ["--input", str(path)]
        module = tmp_path / "echo.wasm"
        module.write_bytes(workloads.module_bytes("echo"))
        submitted = json.loads(gaia(home, "task", "submit", str(module), "--entry", "echo", *inputs, "--wait",
                                    "--json").stdout)
        assert [bytes.fromhex(r["output_hex"]) for r in submitted] == [f"cli input {i}".encode() for i in range(3)]
        listed = json.loads(gaia(home, "task", "list", "--json").stdout)
        assert listed[0]["status"] == "finished" and listed[0]["tasks"] == {"done": 3}
        shown = json.loads(gaia(home, "task", "result", listed[0]["job"], "--json").stdout)
        assert [r["state"] for r in shown] == ["done"] * 3
        rewards = json.loads(gaia(home, "rewards", "--json").stdout)
        assert sum(r["tasks"] for r in rewards if r["role"] == "granted") == 3
    finally:
        stopped = gaia(home, "stop", check=False)
    assert stopped.returncode == 0 and "node stopped" in stopped.stdout
    assert not (home.root / "node.pid").exists()
    assert gaia(home, "status", "--json", check=False).returncode != 0


def test_sigterm_drains_in_flight_tasks_and_exits_zero(tmp_path: Path) -> None:
    home = Home(tmp_path / "solo")
    gaia(home, "init", "--name", "solo")
    proc = subprocess.Popen([sys.executable, "-m", "gaia_core", "--home", str(home.root), "node", "--cores", "1",
                             "--listen", f"tcp://127.0.0.1:{devnet.free_port()}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env={**os.environ, "GAIA_HOME": str(home.root)}, start_new_session=True)
    try:
        wait_until(lambda: (home.root / "node.pid").exists(), timeout=60, what="the node to start")
        job = submit(home, slow_tasks(node_id(home), 1, epochs=1500))
        wait_until(lambda: call(home, "status")["running"] == 1, timeout=30, what="the task to start running")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not (home.root / "node.pid").exists()
    # the in-flight task finished before the node stopped: its job is complete after a restart
    restarted = gaia(home, "node", "--detach", "--listen", f"tcp://127.0.0.1:{devnet.free_port()}")
    assert restarted.returncode == 0
    try:
        assert call(home, "job", job=job)["tasks"] == {"done": 1}
    finally:
        gaia(home, "stop")


def test_restart_keeps_identity_ledger_and_stats(tmp_path: Path) -> None:
    directory = tmp_path / "devnet"
    with running_devnet(directory, 2) as homes:
        ids = [node_id(h) for h in homes]
        run_job(homes[0], echo_tasks([f"before restart {i}".encode() for i in range(10)], ids[0]))
        before = [(call(h, "status"), call(h, "rewards")) for h in homes]
    with running_devnet(directory, 2) as homes:
        after = [(call(h, "status"), call(h, "rewards")) for h in homes]
    for (status_before, rewards_before), (status_after, rewards_after), expected in zip(before, after, ids,
                                                                                       strict=True):
        assert status_after["node_id"] == status_before["node_id"] == expected
        assert rewards_after == rewards_before
        assert status_after["tasks"] == status_before["tasks"]
        assert status_after["jobs"] == status_before["jobs"]
    assert sum(s["tasks"].get("ok", 0) for s, _ in after) == 10


def test_submitter_killed_mid_job_resumes_it_after_restart(tmp_path: Path) -> None:
    directory = tmp_path / "devnet"
    with running_devnet(directory, 3) as homes:
        tasks = slow_tasks(node_id(homes[0]), 12)
        job = submit(homes[0], tasks)
        wait_until(lambda: call(homes[0], "job", job=job)["tasks"].get("done", 0) >= 1, timeout=60,
                   what="the first task to complete")
        kill(homes[0])
        devnet.start_node(homes[0])
        status = wait_job(homes[0], job, timeout=120)
        assert status["tasks"] == {"done": len(tasks)}
        rows = results(homes[0], job)
        assert [r["id"] for r in rows] == [t.id for t in tasks]
        assert all(r["result"].ok for r in rows)


def test_no_payload_left_on_disk_after_a_released_job(tmp_path: Path) -> None:
    directory = tmp_path / "devnet"
    marker = b"GAIA-PRIVACY-MARKER-" + os.urandom(12).hex().encode()
    with running_devnet(directory, 3, extra={"privacy": {"retention_s": 0.0}}) as homes:
        payloads = [marker + f" task {i} ".encode() + marker for i in range(12)]
        job = submit(homes[0], echo_tasks(payloads, node_id(homes[0])))
        assert wait_job(homes[0], job)["tasks"] == {"done": 12}
        assert [r["result"].output for r in results(homes[0], job, release=True)] == payloads
        assert [r["result"] for r in results(homes[0], job)] == [None] * 12  # released
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in files) and any(p.name == "node.log" for p in files)
    leaked = [str(p) for p in files if marker in p.read_bytes()]
    assert leaked == []


TRAP_WAT = """(module (memory (export "memory") 1)
  (func (export "gaia_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "run") (param i32 i32) (result i64) unreachable))"""


def test_a_trapping_task_fails_with_its_reason_and_the_rest_of_the_job_completes(net: list[Home]) -> None:
    import wasmtime

    submitter = node_id(net[0])
    trap = Task.create(wasmtime.wat2wasm(TRAP_WAT), entry="run", input=b"x", submitter=submitter)
    job = submit(net[0], [*echo_tasks([b"fine"], submitter), trap])

    status = wait_job(net[0], job)
    rows = results(net[0], job)

    assert status["tasks"] == {"done": 1, "failed": 1}
    assert rows[0]["result"].output == b"fine"
    assert rows[1]["state"] == "failed" and rows[1]["reason"].startswith("trap")
    assert rows[1]["result"].status.value == "trap" and rows[1]["attempts"] == 1


def test_identical_tasks_in_one_job_both_finish(net: list[Home]) -> None:
    rows = run_job(net[0], echo_tasks([b"same", b"same", b"other"], node_id(net[0])))
    assert [r["result"].output for r in rows] == [b"same", b"same", b"other"]


def test_a_job_pinned_to_one_node_cannot_ask_for_replicas(net: list[Home]) -> None:
    from gaia_core.errors import NodeError

    tasks = echo_tasks([b"pinned"], node_id(net[0]))
    with pytest.raises(NodeError, match="cannot run on several nodes"):
        call(net[0], "submit", tasks=[codec.encode(t) for t in tasks], name="t", redundancy=2, to=node_id(net[1]))


def test_identical_tasks_sent_to_one_peer_are_admitted_once_and_both_finish(net: list[Home]) -> None:
    tasks = echo_tasks([b"twin", b"twin", b"solo"], node_id(net[0]))
    job = call(net[0], "submit", tasks=[codec.encode(t) for t in tasks], name="t", to=node_id(net[1]))
    assert wait_job(net[0], job)["tasks"] == {"done": 3}
    assert [r["result"].output for r in results(net[0], job)] == [b"twin", b"twin", b"solo"]
