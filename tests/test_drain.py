"""Stopping drains and loses nothing: a node's own queued tasks stay pending and run after a restart.

An in-process node with one core runs a job of its own; it is stopped mid-job (what ``gaia stop`` and
SIGTERM do) and started again on the same home: every task ends exactly once, done, and a recording
plugin sees each task finish exactly once across both runs. The last test does the same with real
`gaia node` processes and SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from inprocess import Recorder, build_node, load_plugins, make_home, running, wait_for
from nodes import call, gaia, node_id, pid, slow_tasks, submit, wait_job, wait_until

from gaia_core import devnet
from gaia_core.config import Home
from gaia_core.model import Status
from gaia_core.node import QUEUE_CLOSED

pytest.importorskip("gaia_runner_wasm.workloads")

TASKS = 6


def _states(db: Path, job: str) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM tasks WHERE job = ? GROUP BY state", (job,)))


def test_stop_mid_job_keeps_own_tasks_pending_and_a_restart_finishes_each_once(tmp_path: Path) -> None:
    home = make_home(tmp_path, "solo")
    recorder = Recorder()
    first = build_node(home, load_plugins((recorder, "recorder")))
    with running(first, drain_s=20.0):
        tasks = slow_tasks(first.node_id, TASKS, epochs=400)
        job = first.jobs.submit(tasks, name="drain")
        wait_for(lambda: recorder.results(), timeout=60, what="the first task to finish")
    before = _states(home.state_db, job)
    assert "failed" not in before, before
    assert before.get("pending", 0) >= 1, f"the job finished before the stop; make the tasks slower: {before}"
    assert before.get("done", 0) == len(recorder.results())

    second = build_node(home, load_plugins((recorder, "recorder")))
    with running(second, drain_s=20.0):
        wait_for(lambda: second.jobs.job_status(job)["status"] == "finished", timeout=120, what="the resumed job")
        counts = second.jobs.job_status(job)["tasks"]
        assert {state: n for state, n in counts.items() if n} == {"done": TASKS}
    finishes = Counter(result.task_id for result in recorder.results())
    assert finishes == Counter({task.id: 1 for task in tasks})
    assert all(result.status is Status.OK for result in recorder.results())
    assert _states(home.state_db, job) == {"done": TASKS}


def test_a_remote_submitters_queued_tasks_come_back_as_queue_closed(tmp_path: Path) -> None:
    """Tasks of another submitter that the closing queue drops are answered ``cancelled`` (QUEUE_CLOSED)."""
    home = make_home(tmp_path, "worker")
    recorder = Recorder()
    node = build_node(home, load_plugins((recorder, "recorder")))
    remote = "ab" * 32  # an unreachable submitter: its results wait in the outbox, the stop does not hang
    with running(node, drain_s=3.0):
        blocker, *queued = slow_tasks(remote, 3, epochs=400)
        for task in (blocker, *queued):
            node.admit(task, origin=remote)
        wait_for(lambda: node._running, timeout=30, what="the first task to start")
    statuses = {result.task_id: result for result in recorder.results()}
    assert statuses[blocker.id].status is Status.OK  # it was running: the drain let it finish
    for task in queued:  # each either ran before the queue closed or came back as queue-closed
        result = statuses[task.id]
        assert result.status is Status.OK or (result.status is Status.CANCELLED and result.message == QUEUE_CLOSED)
    assert any(statuses[task.id].status is Status.CANCELLED for task in queued)


def test_sigterm_mid_job_on_a_real_node_then_restart_finishes_every_task_once(tmp_path: Path) -> None:
    """The same through `gaia node` processes: SIGTERM mid-job, start again, each task done and credited once."""
    home = Home(tmp_path / "real")
    gaia(home, "init", "--name", "real")
    listen = ["--listen", f"tcp://127.0.0.1:{devnet.free_port()}", "--cores", "1"]
    gaia(home, "node", "--detach", *listen)
    try:
        job = submit(home, slow_tasks(node_id(home), TASKS, epochs=400))
        wait_until(lambda: call(home, "job", job=job)["tasks"].get("done", 0) >= 1, timeout=60,
                   what="the first task to finish")
        os.kill(pid(home), signal.SIGTERM)
        wait_until(lambda: not (home.root / "node.pid").exists(), timeout=30, what="the node to stop")
        before = _states(home.state_db, job)
        assert "failed" not in before and before.get("pending", 0) >= 1, before
        gaia(home, "node", "--detach", *listen)
        status = wait_job(home, job, timeout=120)
    finally:
        gaia(home, "stop", check=False)
    assert status["tasks"] == {"done": TASKS}
    assert _states(home.state_db, job) == {"done": TASKS}
    with sqlite3.connect(home.state_db) as conn:  # credit granted once per task, none twice
        granted = conn.execute("SELECT COUNT(*), COUNT(DISTINCT task_id) FROM ledger WHERE role = 'granted'").fetchone()
    assert granted == (TASKS, TASKS)
