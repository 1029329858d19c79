"""Conformance suite for the queue role (:class:`gaia_core.roles.Queue`).

Subclass :class:`QueueTests` in your plugin's tests and provide a ``queue_factory`` fixture
returning the callable your :class:`~gaia_core.roles.QueueSpec` registers::

    from gaia_core.testing.conformance.queue import QueueTests

    class TestMyQueue(QueueTests):
        @pytest.fixture
        def queue_factory(self):
            return MyQueue

Each test receives ``make_queue(**queue_config)``, which builds a queue from a node context whose
``[queue]`` table is ``queue_config`` (task kind ``wasm`` is runnable); queues it builds are closed
after the test. The checks: admission runs the kernel's checks and counts rejections; order is
priority, then earliest deadline, then FIFO; duplicates are idempotent; capacity (count and
bytes) fails fast with ``queue_full`` and a retry hint; cancel and expiry give exactly one
result through ``take_dropped``; ``next`` blocks, times out and wakes on ``close``; concurrent
consumers never get a task twice.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

import attrs
import pytest

from gaia_core.config import QueueSection
from gaia_core.errors import RejectedError
from gaia_core.model import Limits, Status, Task
from gaia_core.roles import NodeContext, Queue

QueueFactory = Callable[[NodeContext], Queue]
MakeQueue = Callable[..., Queue]

#: Module id of every task the suite builds (the module itself is never sent).
MODULE_ID = "ab" * 32


def make_task(n: int = 0, **fields: object) -> Task:
    """A small distinct task (input ``task-<n>``) of kind ``wasm``; ``fields`` override Task fields."""
    return Task(module_id=MODULE_ID, input=f"task-{n}".encode(), **fields)


def build_queue(factory: QueueFactory, context: NodeContext, **queue_config: int) -> Queue:
    """``factory(context)`` with ``context``'s ``[queue]`` table replaced by ``queue_config``."""
    config = attrs.evolve(context.config, queue=QueueSection(**queue_config))
    return factory(attrs.evolve(context, config=config))


#: Most tasks :func:`drain` takes, so a queue that never runs dry fails instead of hanging.
DRAIN_LIMIT = 10_000


def drain(queue: Queue) -> list[Task]:
    """Every task ``queue.next`` hands out until it has none (without waiting), at most DRAIN_LIMIT."""
    out = []
    for _ in range(DRAIN_LIMIT):
        task = queue.next(timeout=0)
        if task is None:
            return out
        out.append(task)
    raise AssertionError(f"queue still hands out tasks after {DRAIN_LIMIT}")


class QueueTests:
    """The contract every queue provider keeps. Provide the ``queue_factory`` fixture."""

    @pytest.fixture
    def queue_factory(self) -> QueueFactory:
        """Override: return the callable that builds your queue from a NodeContext."""
        raise NotImplementedError("subclass QueueTests and provide a `queue_factory` fixture")

    @pytest.fixture
    def make_queue(self, queue_factory: QueueFactory, node_context: NodeContext) -> Iterator[MakeQueue]:
        made: list[Queue] = []

        def make(**queue_config: int) -> Queue:
            queue = build_queue(queue_factory, node_context, **queue_config)
            made.append(queue)
            return queue

        yield make
        for queue in made:
            queue.close()

    # -- admission -------------------------------------------------------------------------

    def test_admit_returns_the_task_id(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        task = make_task()
        assert queue.admit(task) == task.id
        stats = queue.stats()
        assert stats.depth == 1 and stats.admitted == 1

    def test_admission_checks_run_and_rejections_are_counted(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        with pytest.raises(RejectedError) as info:
            queue.admit(make_task(kind="unknown-kind"))
        assert info.value.reason == "no_runner"
        with pytest.raises(RejectedError) as info:
            queue.admit(make_task(limits=Limits(fuel=10**30)))
        assert info.value.reason == "over_limits"
        with pytest.raises(RejectedError) as info:
            queue.admit(make_task(deadline=time.time() - 10))
        assert info.value.reason == "expired"
        stats = queue.stats()
        assert stats.depth == 0 and stats.admitted == 0
        assert stats.rejected == {"no_runner": 1, "over_limits": 1, "expired": 1}

    def test_duplicate_admit_is_idempotent(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        task = make_task()
        assert queue.admit(task) == queue.admit(make_task()) == task.id
        assert queue.stats().depth == 1
        assert drain(queue) == [task]
        assert queue.admit(task) == task.id  # handed out, not finished: still not queued twice
        assert drain(queue) == []

    # -- bounds ----------------------------------------------------------------------------

    def test_count_capacity_fails_fast_with_a_retry_hint(self, make_queue: MakeQueue) -> None:
        queue = make_queue(capacity=2)
        queue.admit(make_task(1))
        queue.admit(make_task(2))
        with pytest.raises(RejectedError) as info:
            queue.admit(make_task(3))
        assert info.value.reason == "queue_full"
        assert info.value.retry_after is not None and info.value.retry_after > 0
        assert queue.stats().rejected == {"queue_full": 1}
        assert queue.next(timeout=0) is not None
        queue.admit(make_task(3))
        assert queue.stats().depth == 2

    def test_byte_capacity_fails_fast(self, make_queue: MakeQueue) -> None:
        queue = make_queue(capacity_bytes=100)
        queue.admit(Task(module_id=MODULE_ID, input=b"a" * 60))
        with pytest.raises(RejectedError) as info:
            queue.admit(Task(module_id=MODULE_ID, input=b"b" * 60))
        assert info.value.reason == "queue_full"
        assert queue.stats().depth == 1

    # -- ordering --------------------------------------------------------------------------

    def test_priority_then_earliest_deadline_then_fifo(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        soon, later = time.time() + 3600, time.time() + 7200
        tasks = [
            make_task(0), make_task(1, priority=5), make_task(2, deadline=later), make_task(3),
            make_task(4, deadline=soon), make_task(5, priority=5), make_task(6, priority=-1),
        ]
        for task in tasks:
            queue.admit(task)
        order = [int(t.input.decode().split("-")[1]) for t in drain(queue)]
        assert order == [1, 5, 4, 2, 0, 3, 6]

    # -- outcomes --------------------------------------------------------------------------

    def test_cancel_gives_one_cancelled_result(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        keep, drop = make_task(1), make_task(2)
        queue.admit(keep)
        queue.admit(drop)
        assert queue.cancel(drop.id) is True
        assert queue.cancel(drop.id) is False
        assert queue.cancel("0" * 64) is False
        assert drain(queue) == [keep]
        assert queue.cancel(keep.id) is False  # already handed out
        assert [(r.task_id, r.status) for r in queue.take_dropped()] == [(drop.id, Status.CANCELLED)]
        assert queue.take_dropped() == []
        assert queue.stats().finished.get("cancelled") == 1

    def test_expired_tasks_are_dropped_not_run(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        short, open_ended = make_task(1, deadline=time.time() + 0.3), make_task(2)
        queue.admit(short)
        queue.admit(open_ended)
        time.sleep(0.5)
        assert drain(queue) == [open_ended]
        assert [(r.task_id, r.status) for r in queue.take_dropped()] == [(short.id, Status.EXPIRED)]
        assert queue.stats().finished.get("expired") == 1

    def test_every_admitted_task_ends_exactly_once(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        tasks = [make_task(i) for i in range(20)]
        for task in tasks:
            queue.admit(task)
        cancelled = {t.id for t in tasks[::3] if queue.cancel(t.id)}
        ran = [t.id for t in drain(queue)]
        dropped = [r.task_id for r in queue.take_dropped()]
        assert len(ran) == len(set(ran))
        assert set(dropped) == cancelled and len(dropped) == len(cancelled)
        assert sorted(ran + dropped) == sorted(t.id for t in tasks)

    def test_done_records_the_outcome_once(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        task = make_task(1)
        queue.admit(task)
        assert queue.next(timeout=1.0) == task
        assert queue.done(task.id, Status.OK) is True
        assert queue.done(task.id, Status.OK) is False
        assert queue.stats().finished.get("ok") == 1
        assert queue.admit(task) == task.id and queue.next(timeout=1.0) == task  # finished work may run again

    # -- blocking and threads --------------------------------------------------------------

    def test_next_times_out_when_empty(self, make_queue: MakeQueue) -> None:
        assert make_queue().next(timeout=0.05) is None

    def test_blocked_next_gets_a_task_admitted_later(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        got: list[Task | None] = []
        consumer = threading.Thread(target=lambda: got.append(queue.next(timeout=10)))
        consumer.start()
        time.sleep(0.05)
        task = make_task()
        queue.admit(task)
        consumer.join(10)
        assert got == [task]

    def test_close_wakes_consumers_and_refuses_admissions(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        got: list[Task | None] = []
        consumers = [threading.Thread(target=lambda: got.append(queue.next(timeout=10))) for _ in range(3)]
        for consumer in consumers:
            consumer.start()
        time.sleep(0.05)
        queue.close()
        for consumer in consumers:
            consumer.join(10)
        assert got == [None, None, None]
        with pytest.raises(RejectedError):
            queue.admit(make_task())

    def test_concurrent_consumers_never_share_a_task(self, make_queue: MakeQueue) -> None:
        queue = make_queue(capacity=1000)
        tasks = [make_task(i, submitter=f"{i % 3:064x}") for i in range(300)]
        taken: list[list[str]] = [[] for _ in range(4)]

        def consume(out: list[str]) -> None:
            for _ in range(len(tasks) + 1):
                task = queue.next(timeout=0.5)
                if task is None:
                    return
                out.append(task.id)

        consumers = [threading.Thread(target=consume, args=(out,)) for out in taken]
        for consumer in consumers:
            consumer.start()
        for task in tasks:
            queue.admit(task)
        for consumer in consumers:
            consumer.join(30)
        ids = [task_id for out in taken for task_id in out]
        assert sorted(ids) == sorted(t.id for t in tasks)
