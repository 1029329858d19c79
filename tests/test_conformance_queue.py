"""The queue conformance suite passes a small correct queue and fails deliberately broken ones."""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import math
import threading
import time

import pytest

from gaia_core import admission
from gaia_core.errors import RejectedError
from gaia_core.model import Envelope, Status, Task, TaskResult
from gaia_core.roles import NodeContext, QueueStats
from gaia_core.testing.conformance.queue import QueueFactory, QueueTests, build_queue


class HeapQueue:
    """A straightforward correct queue: heapq ordered by (-priority, deadline, arrival) under one lock."""

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.capacity = context.config.queue.capacity
        self.capacity_bytes = context.config.queue.capacity_bytes
        self.cond = threading.Condition()
        self.heap: list[tuple[object, ...]] = []
        self.queued: dict[str, Task] = {}
        self.handed_out: set[str] = set()
        self.dropped: list[TaskResult] = []
        self.arrivals = itertools.count()
        self.closed = False
        self.admitted = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.finished: collections.Counter[str] = collections.Counter()

    def key(self, task: Task, arrival: int) -> tuple[object, ...]:
        deadline = math.inf if task.deadline is None else task.deadline
        return (-task.priority, deadline, arrival)

    def validate(self, task: Task, envelope: Envelope | None) -> None:
        admission.check(task, self.context, envelope=envelope)

    def admit(self, task: Task, *, envelope: Envelope | None = None) -> str:
        try:
            self.validate(task, envelope)
            with self.cond:
                return self._enqueue(task)
        except RejectedError as exc:
            with self.cond:
                self.rejected[exc.reason] += 1
            raise

    def _enqueue(self, task: Task) -> str:
        if self.closed:
            raise RejectedError("queue_full", "closed")
        if self.is_duplicate(task.id):
            return task.id
        held = sum(len(t.input) for t in self.queued.values())
        if self.is_full(held + len(task.input)):
            raise RejectedError("queue_full", "full", retry_after=1.0)
        self.queued[task.id] = task
        heapq.heappush(self.heap, (*self.key(task, next(self.arrivals)), task.id))
        self.admitted += 1
        self.cond.notify()
        return task.id

    def is_duplicate(self, task_id: str) -> bool:
        return task_id in self.queued or task_id in self.handed_out

    def is_full(self, nbytes: int) -> bool:
        return len(self.queued) >= self.capacity or nbytes > self.capacity_bytes

    def next(self, timeout: float | None = None) -> Task | None:
        until = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while not self.closed:
                self.expire()
                while self.heap:
                    task_id = heapq.heappop(self.heap)[-1]
                    if task_id in self.queued:
                        self.handed_out.add(task_id)
                        return self.queued.pop(task_id)
                remaining = None if until is None else until - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self.cond.wait(remaining)
        return None

    def expire(self) -> None:
        now = time.time()
        for task_id, task in list(self.queued.items()):
            if task.deadline is not None and task.deadline < now:
                self.drop(task_id, Status.EXPIRED)

    def drop(self, task_id: str, status: Status) -> None:
        del self.queued[task_id]
        self.dropped.append(TaskResult(task_id=task_id, status=status))
        self.finished[status.value] += 1

    def done(self, task_id: str, status: Status) -> bool:
        with self.cond:
            if task_id not in self.handed_out:
                return False
            self.handed_out.discard(task_id)
            self.finished[Status(status).value] += 1
            return True

    def cancel(self, task_id: str) -> bool:
        with self.cond:
            if task_id not in self.queued:
                return False
            self.drop(task_id, Status.CANCELLED)
            return True

    def take_dropped(self) -> list[TaskResult]:
        with self.cond:
            self.expire()
            dropped, self.dropped = self.dropped, []
            return dropped

    def stats(self) -> QueueStats:
        with self.cond:
            self.expire()
            return QueueStats(depth=len(self.queued), capacity=self.capacity, admitted=self.admitted,
                              rejected=dict(self.rejected), finished=dict(self.finished))

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class TestHeapQueue(QueueTests):
    """The suite passes a correct queue."""

    @pytest.fixture
    def queue_factory(self) -> QueueFactory:
        return HeapQueue


class Lifo(HeapQueue):
    def key(self, task: Task, arrival: int) -> tuple[object, ...]:
        return (-arrival,)


class SkipsAdmission(HeapQueue):
    def validate(self, task: Task, envelope: Envelope | None) -> None:
        pass


class Unbounded(HeapQueue):
    def is_full(self, nbytes: int) -> bool:
        return False


class NoDedup(HeapQueue):
    def is_duplicate(self, task_id: str) -> bool:
        return False


class LosesCancelled(HeapQueue):
    def drop(self, task_id: str, status: Status) -> None:
        del self.queued[task_id]


class RunsExpired(HeapQueue):
    def expire(self) -> None:
        pass


@pytest.mark.parametrize(("broken", "check"), [
    (Lifo, "test_priority_then_earliest_deadline_then_fifo"),
    (SkipsAdmission, "test_admission_checks_run_and_rejections_are_counted"),
    (Unbounded, "test_count_capacity_fails_fast_with_a_retry_hint"),
    (Unbounded, "test_byte_capacity_fails_fast"),
    (NoDedup, "test_duplicate_admit_is_idempotent"),
    (LosesCancelled, "test_cancel_gives_one_cancelled_result"),
    (LosesCancelled, "test_every_admitted_task_ends_exactly_once"),
    (RunsExpired, "test_expired_tasks_are_dropped_not_run"),
])
def test_suite_fails_a_broken_queue(broken: QueueFactory, check: str, node_context: NodeContext) -> None:
    make = functools.partial(build_queue, broken, node_context)
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        getattr(QueueTests(), check)(make)
