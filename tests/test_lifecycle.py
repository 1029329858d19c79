"""The submitter's job and task lifecycle, as docs/node.md draws it, driven transition by transition.

The two ``stateDiagram-v2`` blocks of the section "Life of a job and its tasks on the submitter" are
parsed into ``(diagram, from, to, event)`` transitions. Each test below drives a real node (in-process,
one core; a real ``gaia node`` process for kill -9) through one or more of those events and reads the
states before and after from the job store; ``@drives`` registers what it drives. The last test fails
when a transition of the diagrams has no test or a test drives one the diagrams do not draw.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from inprocess import build_node, load_plugins, make_home, running, wait_for
from nodes import call, echo_tasks, kill, node_id, running_devnet, submit

from gaia_core import devnet
from gaia_core.config import Home
from gaia_core.jobs.jobstore import JobStore
from gaia_core.model import Task
from gaia_core.node import Node
from gaia_core.store import Store

wasmtime = pytest.importorskip("wasmtime")
pytest.importorskip("gaia_runner_wasm.workloads")

DOC = Path(__file__).resolve().parents[1] / "docs" / "node.md"
SECTION = "## Life of a job and its tasks on the submitter"
Transition = tuple[str, str, str, str]  # (diagram, from, to, event)

TRAP_WAT = """(module (memory (export "memory") 1)
  (func (export "gaia_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "run") (param i32 i32) (result i64) unreachable))"""
#: Counts to 30 million and returns nothing: about 0.1-0.3 s of WebAssembly, whatever its input.
SPIN_WAT = """(module (memory (export "memory") 1)
  (func (export "gaia_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "run") (param i32 i32) (result i64) (local i32)
    (loop $spin (local.set 2 (i32.add (local.get 2) (i32.const 1)))
      (br_if $spin (i32.lt_u (local.get 2) (i32.const 30000000))))
    i64.const 0))"""


def trap_task(submitter: str, payload: bytes = b"trap", **fields: object) -> Task:
    """A task whose module traps at once (a final failure: the task itself is at fault)."""
    return Task.create(wasmtime.wat2wasm(TRAP_WAT), entry="run", input=payload, submitter=submitter, **fields)


def spin_tasks(submitter: str, payloads: list[bytes]) -> list[Task]:
    """Tasks that keep a core busy a little while, one per payload (distinct ids)."""
    module = wasmtime.wat2wasm(SPIN_WAT)
    return [Task.create(module, entry="run", input=p, submitter=submitter) for p in payloads]


def diagram_transitions(text: str) -> set[Transition]:
    """Every ``A --> B : event`` line of the titled mermaid state diagrams in the lifecycle section."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    found: set[Transition] = set()
    for block in re.findall(r"```mermaid\n(.*?)```", section, re.S):
        title = re.search(r"^title:\s*(\w+)\s*$", block, re.M)
        assert title and "stateDiagram-v2" in block, f"a lifecycle diagram without a title: {block[:80]!r}"
        for line in block.splitlines():
            match = re.fullmatch(r"\s*(\S+)\s*-->\s*(\S+)\s*:\s*(.+?)\s*", line)
            if match:
                source, target, event = match.groups()
                found.add((title[1], source, target, event))
    return found


DRIVEN: set[Transition] = set()
F = TypeVar("F", bound=Callable[..., object])


def drives(diagram: str, source: str, target: str, event: str) -> Callable[[F], F]:
    """Mark a test as driving one transition of a diagram (checked against docs/node.md)."""
    DRIVEN.add((diagram, source, target, event))
    return lambda test: test


def states(jobs: JobStore, job: str) -> tuple[str, list[str]]:
    """A job's status and its tasks' states in task order, read from the job store."""
    return jobs.job(job)[0], [row["state"] for row in jobs.results(job)]


@contextmanager
def paused(node: Node) -> Iterator[None]:
    """Nothing is offered or answered while the block runs (it holds the dispatcher's lock), so what is
    read in it is the state before any node could act on a task submitted in it."""
    with node.jobs.dispatcher.lock:
        yield


def ended(node: Node, job: str, *, timeout: float = 20.0) -> tuple[str, list[str]]:
    """Wait until ``job`` has no pending task left; its states then."""
    wait_for(lambda: "pending" not in states(node.jobs.jobstore, job)[1], timeout=timeout, what=f"job {job} to end")
    return states(node.jobs.jobstore, job)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    home = make_home(tmp_path_factory.mktemp("lifecycle"), "submitter")
    with running(build_node(home, load_plugins()), drain_s=2.0) as started:
        yield started


# ---------------------------------------------------------------- submit, done, failed


@drives("job", "[*]", "running", "submit")
@drives("task", "[*]", "pending", "submit")
@drives("task", "pending", "done", "a verified ok result")
@drives("job", "running", "finished", "its last pending task ends")
def test_submit_then_verified_results_finish_the_job(node: Node) -> None:
    jobs_before = sum(node.jobs.jobstore.summary().values())
    with paused(node):
        job = node.jobs.submit(echo_tasks([b"one", b"two"], node.node_id), name="done")
        assert sum(node.jobs.jobstore.summary().values()) == jobs_before + 1
        assert states(node.jobs.jobstore, job) == ("running", ["pending", "pending"])
    assert ended(node, job) == ("finished", ["done", "done"])
    rows = list(node.jobs.jobstore.results(job))
    assert all(row["result"] for row in rows) and {row["reason"] for row in rows} == {""}


@drives("task", "pending", "failed", "a final result that is not ok")
@drives("task", "failed", "pending", "retry")
@drives("job", "finished", "running", "retry")
def test_a_trap_fails_the_task_once_and_retry_makes_it_pending_again(node: Node) -> None:
    with paused(node):
        job = node.jobs.submit([trap_task(node.node_id), *echo_tasks([b"fine"], node.node_id)], name="trap")
        assert states(node.jobs.jobstore, job) == ("running", ["pending", "pending"])
    assert ended(node, job) == ("finished", ["failed", "done"])
    rows = list(node.jobs.jobstore.results(job))
    assert rows[0]["reason"].startswith("trap") and rows[0]["attempts"] == 1  # not re-sent: the task is at fault

    with paused(node):
        assert node.jobs.retry(job)["retried"] == 1
        assert states(node.jobs.jobstore, job) == ("running", ["pending", "done"])
        assert next(node.jobs.jobstore.results(job))["attempts"] == 0
    assert ended(node, job) == ("finished", ["failed", "done"])


@drives("task", "pending", "failed", "its deadline passes")
def test_a_task_whose_deadline_passes_before_it_runs_fails_as_expired(node: Node) -> None:
    deadline = time.time() + 0.3
    with paused(node):
        job = node.jobs.submit([trap_task(node.node_id, b"late", deadline=deadline)], name="expiry")
        assert states(node.jobs.jobstore, job) == ("running", ["pending"])
        time.sleep(max(0.0, deadline - time.time()) + 0.05)  # no node can run it before its deadline
    assert ended(node, job) == ("finished", ["failed"])
    assert next(node.jobs.jobstore.results(job))["reason"].startswith("expired")


@drives("task", "pending", "failed", "no node can run it")
def test_a_task_no_node_will_run_fails_with_the_last_refusal(node: Node) -> None:
    wanting = echo_tasks([b"needs the network"], node.node_id, capabilities={"net"})  # not offered
    with paused(node):
        job = node.jobs.submit(wanting, name="unrunnable")
        assert states(node.jobs.jobstore, job) == ("running", ["pending"])
    assert ended(node, job) == ("finished", ["failed"])
    assert next(node.jobs.jobstore.results(job))["reason"].startswith("over_limits")


# ---------------------------------------------------------------- owners' control


@drives("job", "running", "cancelled", "cancel")
@drives("task", "pending", "cancelled", "cancel")
def test_cancel_ends_the_pending_tasks_and_keeps_the_ended_ones(node: Node) -> None:
    job = node.jobs.submit([*echo_tasks([b"quick"], node.node_id),
                            *spin_tasks(node.node_id, [f"spin {i}".encode() for i in range(6)])], name="cancel")
    wait_for(lambda: states(node.jobs.jobstore, job)[1][0] == "done", timeout=20, what="the quick task")
    with paused(node):  # some spin tasks are out at the worker, the others wait for a slot
        status, before = states(node.jobs.jobstore, job)
        assert status == "running" and before[0] == "done" and before.count("pending") >= 1, before
        node.jobs.cancel(job)
        after = states(node.jobs.jobstore, job)
    assert after == ("cancelled", ["cancelled" if s == "pending" else s for s in before])
    time.sleep(0.5)  # copies that were running at the worker answer now: they change nothing
    assert states(node.jobs.jobstore, job) == after


@drives("job", "cancelled", "running", "retry")
def test_retry_of_a_cancelled_job_runs_its_failed_tasks_and_it_finishes(node: Node) -> None:
    spins = spin_tasks(node.node_id, [f"retry-spin {i}".encode() for i in range(6)])
    job = node.jobs.submit([trap_task(node.node_id, b"retry-trap"), *spins], name="cancel then retry")
    wait_for(lambda: states(node.jobs.jobstore, job)[1][0] == "failed", timeout=20, what="the trap to fail")
    node.jobs.cancel(job)
    status, before = states(node.jobs.jobstore, job)
    assert status == "cancelled" and before[0] == "failed" and "cancelled" in before, before
    with paused(node):
        assert node.jobs.retry(job)["retried"] == 1
        assert states(node.jobs.jobstore, job) == ("running", ["pending", *before[1:]])
    assert ended(node, job) == ("finished", before)


# ---------------------------------------------------------------- stop and kill -9


def stored(home: Home, job: str) -> tuple[str, list[str]]:
    """A stopped node's job as its next start will find it in state.db."""
    store = Store(home.state_db)
    try:
        return states(JobStore(store), job)
    finally:
        store.close()


def stored_live(home: Home, job: str) -> list[str]:
    """A running node's task states of ``job``, read through its control socket from its job store."""
    return [row["state"] for row in call(home, "results", job=job)]


def stopped_mid_job(root: Path, tasks: int = 8) -> tuple[Home, str, list[str]]:
    """A one-core node stopped (drained) after the first of ``tasks`` tasks of its own ended; its home,
    the job, and the task states its next start will find in state.db."""
    home = make_home(root, "stopped")
    with running(build_node(home, load_plugins()), drain_s=5.0) as first:
        job = first.jobs.submit(spin_tasks(first.node_id, [f"stop {i}".encode() for i in range(tasks)]), name="stop")
        wait_for(lambda: "done" in states(first.jobs.jobstore, job)[1], timeout=20, what="a first task")
        before = states(first.jobs.jobstore, job)[1]
    status, after = stored(home, job)
    assert status == "running" and "pending" in after and set(after) <= {"done", "pending"}, after
    assert all(a == "done" for a, b in zip(after, before, strict=True) if b == "done")  # the drain only finishes tasks
    return home, job, after


@drives("task", "pending", "pending", "stop, then start")
def test_a_stop_leaves_pending_tasks_pending_and_the_next_start_resumes_them(tmp_path: Path) -> None:
    home, job, _ = stopped_mid_job(tmp_path)
    with running(build_node(home, load_plugins()), drain_s=5.0) as second:
        assert ended(second, job) == ("finished", ["done"] * 8)


@drives("task", "pending", "failed", "its stored task no longer decodes at start")
def test_a_pending_task_damaged_on_disk_fails_as_quarantined_at_the_next_start(tmp_path: Path) -> None:
    home, job, after = stopped_mid_job(tmp_path)
    damaged = len(after) - 1
    assert after[damaged] == "pending", after  # a one-core node runs its tasks in order
    store = Store(home.state_db)
    store.execute("UPDATE tasks SET task = ? WHERE job = ? AND idx = ?", (b"\xc1 not a task frame", job, damaged))
    store.close()
    assert stored(home, job) == ("running", after)
    with running(build_node(home, load_plugins()), drain_s=5.0) as second:
        assert ended(second, job) == ("finished", ["done"] * damaged + ["failed"])
        assert list(second.jobs.jobstore.results(job))[damaged]["reason"].startswith("quarantined: ")


@drives("task", "pending", "pending", "kill -9, then start")
def test_kill_9_leaves_pending_tasks_pending_and_the_next_start_resumes_them(tmp_path: Path) -> None:
    with running_devnet(tmp_path / "net", 1, extra={"node": {"cores": 1}}) as (home,):
        job = submit(home, spin_tasks(node_id(home), [f"kill {i}".encode() for i in range(8)]))
        wait_for(lambda: "done" in stored_live(home, job), timeout=20, what="a first task")
        kill(home)
        status, after = stored(home, job)
        assert status == "running" and "pending" in after and set(after) <= {"done", "pending"}, after
        devnet.start_node(home)
        wait_for(lambda: stored_live(home, job) == ["done"] * 8, timeout=30, what="the resumed job")


# ---------------------------------------------------------------- the diagrams and the tests agree


def test_every_transition_drawn_is_driven_and_every_one_driven_is_drawn() -> None:
    drawn = diagram_transitions(DOC.read_text(encoding="utf-8"))
    assert {d for d, *_ in drawn} == {"job", "task"}
    assert drawn - DRIVEN == set(), "transitions in docs/node.md that no test drives"
    assert DRIVEN - drawn == set(), "transitions driven here that docs/node.md does not draw"
