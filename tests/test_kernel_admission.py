"""The kernel admits every task before any queue sees it: a queue plugin that checks nothing lets nothing bad in.

An in-process node runs with a deliberately lax queue (no signature, id, module, size or deadline check);
every task a node must refuse is refused by ``Node.admit`` and never reaches that queue.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import attrs
import pytest
from inprocess import build_node, load_plugins, make_home, running

from gaia_core import hookimpl
from gaia_core.envelope import seal
from gaia_core.errors import RejectedError
from gaia_core.identity import Identity
from gaia_core.model import Envelope, Limits, Status, Task, TaskResult
from gaia_core.node import Node
from gaia_core.roles import NodeContext, QueueSpec, QueueStats

workloads = pytest.importorskip("gaia_runner_wasm.workloads")

MAX_INPUT = 4096


class LaxQueue:
    """A queue that checks nothing: it takes whatever it is given and remembers it in ``seen``."""

    def __init__(self, context: NodeContext) -> None:
        self.seen: list[Task] = []
        self._cond = threading.Condition()
        self._queued: list[Task] = []
        self._closed = False

    def admit(self, task: Task, *, envelope: Envelope | None = None) -> str:
        with self._cond:
            self.seen.append(task)
            self._queued.append(task)
            self._cond.notify()
        return task.id

    def next(self, timeout: float | None = None) -> Task | None:
        with self._cond:
            if not self._queued and not self._closed:
                self._cond.wait(timeout)
            return self._queued.pop(0) if self._queued and not self._closed else None

    def done(self, task_id: str, status: Status) -> bool:
        return True

    def cancel(self, task_id: str) -> bool:
        return False

    def take_dropped(self) -> list[TaskResult]:
        return []

    def stats(self) -> QueueStats:
        with self._cond:
            return QueueStats(depth=len(self._queued))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class LaxQueuePlugin:
    """Registers :class:`LaxQueue`, and refuses tasks whose job is ``refuse-me`` (a ``gaia_validate_task`` rule)."""

    @hookimpl
    def gaia_queues(self) -> Iterator[QueueSpec]:
        yield QueueSpec(name="lax", factory=LaxQueue)

    @hookimpl
    def gaia_validate_task(self, task: Task, envelope: Envelope | None, context: NodeContext) -> None:
        if task.job == "refuse-me":
            raise RejectedError("invalid", "this plugin refuses jobs named refuse-me")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A started in-process node whose only queue is the lax one, taking inputs up to MAX_INPUT bytes."""
    home = make_home(tmp_path_factory.mktemp("kernel-admission"), "lax", {"admission": {"max_input_bytes": MAX_INPUT}})
    built = build_node(home, load_plugins((LaxQueuePlugin(), "lax-queue"), without=("gaia-queue-memory",)))
    with running(built, drain_s=2.0) as started:
        yield started


def _queue(node: Node) -> LaxQueue:
    assert isinstance(node.queue, LaxQueue)
    return node.queue


def _task(submitter: str, **fields: object) -> Task:
    return Task.create(workloads.module_bytes("echo"), entry="echo", **{"input": b"hello", **fields},
                       submitter=submitter)


def _refused(node: Node, task: Task, reason: str, **kwargs: object) -> None:
    with pytest.raises(RejectedError) as caught:
        node.admit(task, origin=task.submitter or node.node_id, **kwargs)
    assert caught.value.reason == reason, str(caught.value)
    assert task.id not in {t.id for t in _queue(node).seen}


def test_a_good_task_reaches_the_queue(node: Node) -> None:
    peer = Identity.generate()
    task = _task(peer.node_id)
    envelope = seal(peer, "task.offer", b"")
    assert node.admit(task, origin=peer.node_id, envelope=envelope) == task.id
    assert task.id in {t.id for t in _queue(node).seen}


def test_forged_signature_never_reaches_the_queue(node: Node) -> None:
    peer = Identity.generate()
    task = _task(peer.node_id)
    envelope = seal(peer, "task.offer", b"")
    forged = attrs.evolve(envelope, signature=bytes(64))
    _refused(node, task, "bad_signature", envelope=forged)


def test_task_naming_another_submitter_never_reaches_the_queue(node: Node) -> None:
    victim, attacker = Identity.generate(), Identity.generate()
    _refused(node, _task(victim.node_id), "bad_signature", envelope=seal(attacker, "task.offer", b""))


def test_wrong_id_never_reaches_the_queue(node: Node) -> None:
    task = _task(node.node_id)
    _refused(node, task, "bad_id", claimed_id="ab" * 32)


def test_wrong_module_hash_never_reaches_the_queue(node: Node) -> None:
    task = attrs.evolve(_task(node.node_id), module=workloads.module_bytes("upper"))
    _refused(node, task, "bad_module")


def test_oversize_input_never_reaches_the_queue(node: Node) -> None:
    task = Task.create(workloads.module_bytes("echo"), entry="echo", input=b"x" * (MAX_INPUT + 1),
                       submitter=node.node_id)
    _refused(node, task, "too_large")


def test_past_deadline_never_reaches_the_queue(node: Node) -> None:
    _refused(node, _task(node.node_id, deadline=time.time() - 10), "expired")


@pytest.mark.parametrize("deadline", [math.nan, math.inf])
def test_non_finite_deadline_never_reaches_the_queue(node: Node, deadline: float) -> None:
    with attrs.validators.disabled():  # the model refuses it at decode; a lax plugin might build one anyway
        task = _task(node.node_id, deadline=deadline)
    _refused(node, task, "invalid")


def test_validate_hook_runs_before_the_queue(node: Node) -> None:
    _refused(node, _task(node.node_id, job="refuse-me"), "invalid")


def test_refusals_are_counted_per_reason(node: Node) -> None:
    node.store.flush()
    before = node.store.stats().get("rejected.too_large", 0)
    _refused(node, _task(node.node_id, limits=Limits(timeout_s=1.0), input=b"y" * (MAX_INPUT + 1)), "too_large")
    node.store.flush()
    assert node.store.stats()["rejected.too_large"] == before + 1
    assert node.status()["admission"]["too_large"] == before + 1  # what `gaia status --json` shows
