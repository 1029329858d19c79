"""Owners control their jobs: cancel, retry and unique id prefixes, on a real in-process node running its own tasks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import build_node, load_plugins, make_home, running
from nodes import echo_tasks, slow_tasks

from gaia_core.errors import NodeError
from gaia_core.model import Task
from gaia_core.node import Node

workloads = pytest.importorskip("gaia_runner_wasm.workloads")
TRAP_WAT = """(module (memory (export "memory") 1)
  (func (export "gaia_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "run") (param i32 i32) (result i64) unreachable))"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    home = make_home(tmp_path_factory.mktemp("owner-control"), "owner")
    with running(build_node(home, load_plugins()), drain_s=2.0) as started:
        yield started


def test_job_methods_take_a_unique_prefix_and_refuse_unknown_ambiguous_or_malformed_ones(node: Node) -> None:
    jobs: dict[str, str] = {}
    for i in range(17):  # 16 hex digits: two of 17 jobs share a first character
        job = node.jobs.submit(echo_tasks([f"prefix {i}".encode()], node.node_id), name="prefix")
        if job[0] in jobs:
            break
        jobs[job[0]] = job
    assert node.jobs.wait_job(job[:6], timeout=30)["job"] == job
    assert node.jobs.job_status(job[:6])["status"] == "finished"
    assert [r["state"] for r in node.jobs.job_results(job[:6])] == ["done"]
    with pytest.raises(NodeError, match="ambiguous") as caught:
        node.jobs.job_status(job[0])
    assert caught.value.hint and "\n" not in str(caught.value)
    unknown = next(c for c in "0123456789abcdef" if c not in jobs and c != job[0]) if len(jobs) < 16 else "f" * 17
    for bad, message in ((unknown, "no job"), ("", "not a job id"), ("XYZ", "not a job id")):
        for method in (node.jobs.job_status, node.jobs.wait_job, node.jobs.job_results, node.jobs.cancel,
                       node.jobs.retry):
            with pytest.raises(NodeError, match=message):
                method(bad)


def test_cancel_ends_every_unfinished_task_cancelled_exactly_once_and_releases_its_slots(node: Node) -> None:
    job = node.jobs.submit(slow_tasks(node.node_id, 12), name="cancel me")
    answer = node.jobs.cancel(job[:8])
    assert answer["job"] == job and answer["status"] == "cancelled" and answer["cancelled"] >= 1
    assert sum(node.jobs.dispatcher.inflight.values()) == 0 and not node.jobs.dispatcher.slots
    counts = node.jobs.job_status(job)["tasks"]
    assert counts.get("cancelled") == answer["cancelled"] and sum(counts.values()) == 12
    time.sleep(1.0)  # tasks already in the local queue run and answer: nothing about the job changes
    assert node.jobs.job_status(job)["tasks"] == counts and node.jobs.job_status(job)["status"] == "cancelled"
    rows = node.jobs.job_results(job)
    assert {r["reason"] for r in rows if r["state"] == "cancelled"} == {"cancelled by its owner"}
    assert node.jobs.cancel(job)["cancelled"] == 0
    assert node.jobs.wait_job(job, timeout=1)["status"] == "cancelled"


def test_retry_requeues_only_the_failed_tasks_and_the_job_runs_again(node: Node) -> None:
    import wasmtime

    trap = Task.create(wasmtime.wat2wasm(TRAP_WAT), entry="run", input=b"x", submitter=node.node_id)
    job = node.jobs.submit([*echo_tasks([b"fine"], node.node_id), trap], name="retry me")
    assert node.jobs.wait_job(job, timeout=30)["tasks"] == {"done": 1, "failed": 1}
    answer = node.jobs.retry(job[:8])
    assert answer["retried"] == 1 and answer["job"] == job
    status = node.jobs.wait_job(job, timeout=30)
    assert status["status"] == "finished" and status["tasks"] == {"done": 1, "failed": 1}
    rows = node.jobs.job_results(job)
    assert rows[0]["state"] == "done" and rows[1]["reason"].startswith("trap")
    clean = node.jobs.submit(echo_tasks([b"nothing failed"], node.node_id), name="clean")
    node.jobs.wait_job(clean, timeout=30)
    assert node.jobs.retry(clean) == {"job": clean, "status": "finished", "retried": 0, "tasks": {"done": 1}}


def test_cancel_and_retry_are_control_socket_methods(node: Node, tmp_path: Path) -> None:
    from gaia_core.control import ControlClient

    job = node.jobs.submit(slow_tasks(node.node_id, 3), name="over the socket")
    with ControlClient(node.context.home, timeout=10) as client:
        assert client.call("cancel", job=job[:10])["status"] == "cancelled"
        assert client.call("retry", job=job[:10])["retried"] == 0
        with pytest.raises(NodeError, match="no job"):
            client.call("cancel", job="0" * 16)
