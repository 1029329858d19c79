"""The queue conformance suite passes a small correct queue and fails deliberately broken ones."""

from __future__ import annotations

import collections
import heapq
import inspect
import itertools
import math
import threading
import time
from typing import Any

import attrs
import pytest

from gaia_core import admission
from gaia_core.errors import RejectedError
from gaia_core.model import Envelope, Status, Task, TaskResult
from gaia_core.roles import NodeContext, QueueStats
from gaia_core.testing.conformance.queue import QueueFactory, QueueTests, build_queue

#: The fraction of the capacity one submitter may hold.
SHARE = 0.5


class HeapQueue:
    """A straightforward correct queue: one heap per submitter ordered by (-priority, deadline, arrival),
    submitters served round robin, each holding at most half the capacity; one lock."""

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.capacity = context.config.queue.capacity
        self.capacity_bytes = context.config.queue.capacity_bytes
        self.cond = threading.Condition()
        self.heaps: dict[str, list[tuple[object, ...]]] = {}
        self.turns: collections.deque[str] = collections.deque()  # submitters with work, next first
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

    def validate(self, task: Task, envelope: Envelope | None, claimed_id: str | None) -> None:
        admission.check(task, self.context, envelope=envelope, claimed_id=claimed_id)
        if len(task.input) > self.capacity_bytes * SHARE:
            raise RejectedError("too_large", "task larger than a submitter's share of the queue")

    def admit(self, task: Task, *, envelope: Envelope | None = None, claimed_id: str | None = None) -> str:
        try:
            self.validate(task, envelope, claimed_id)
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
        if self.over_share(task):
            raise RejectedError("queue_full", "over this submitter's share", retry_after=1.0)
        held = sum(len(t.input) for t in self.queued.values())
        if self.is_full(held + len(task.input)):
            raise RejectedError("queue_full", "full", retry_after=1.0)
        self.queued[task.id] = task
        self.push(task)
        self.admitted += 1
        self.cond.notify()
        return task.id

    def push(self, task: Task) -> None:
        if task.submitter not in self.heaps:
            self.heaps[task.submitter] = []
            self.turns.append(task.submitter)
        heapq.heappush(self.heaps[task.submitter], (*self.key(task, next(self.arrivals)), task.id))

    def pop(self) -> str | None:
        while self.turns:
            who = self.turns.popleft()
            heap = self.heaps[who]
            task_id = heapq.heappop(heap)[-1]
            if heap:
                self.turns.append(who)
            else:
                del self.heaps[who]
            if task_id in self.queued:
                return task_id
        return None

    def is_duplicate(self, task_id: str) -> bool:
        return task_id in self.queued or task_id in self.handed_out

    def over_share(self, task: Task) -> bool:
        mine = [t for t in self.queued.values() if t.submitter == task.submitter]
        return (len(mine) + 1 > self.capacity * SHARE
                or sum(len(t.input) for t in mine) + len(task.input) > self.capacity_bytes * SHARE)

    def is_full(self, nbytes: int) -> bool:
        return len(self.queued) >= self.capacity or nbytes > self.capacity_bytes

    def next(self, timeout: float | None = None) -> Task | None:
        until = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while not self.closed:
                self.expire()
                task_id = self.pop()
                if task_id is not None:
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
        del self.queued[task_id]  # its heap entry is skipped when popped
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
            if not self.closed:
                self.closed = True
                for task_id in list(self.queued):
                    self.drop(task_id, Status.CANCELLED)
            self.cond.notify_all()


class TestHeapQueue(QueueTests):
    """The suite passes a correct queue."""

    @pytest.fixture
    def make_queue(self) -> QueueFactory:
        return HeapQueue


# -- deliberately broken queues: each drops one check or breaks one promise -------------------


class Lifo(HeapQueue):
    def key(self, task: Task, arrival: int) -> tuple[object, ...]:
        return (-arrival,)


class SkipsAdmission(HeapQueue):
    def validate(self, task: Task, envelope: Envelope | None, claimed_id: str | None) -> None:
        pass


class SkipsSignature(HeapQueue):
    def validate(self, task: Task, envelope: Envelope | None, claimed_id: str | None) -> None:
        super().validate(task, None, claimed_id)


class SkipsSigner(HeapQueue):
    """Checks the envelope's signature but not that the task's submitter signed it."""

    def validate(self, task: Task, envelope: Envelope | None, claimed_id: str | None) -> None:
        signed_by = task if envelope is None else attrs.evolve(task, submitter=envelope.sender)
        super().validate(signed_by, envelope, claimed_id if envelope is None else None)


class SkipsHooks(HeapQueue):
    def validate(self, task: Task, envelope: Envelope | None, claimed_id: str | None) -> None:
        admission.check(task, attrs.evolve(self.context, hook=None), envelope=envelope, claimed_id=claimed_id)


class SkipsClaimedId(HeapQueue):
    def validate(self, task: Task, envelope: Envelope | None, claimed_id: str | None) -> None:
        super().validate(task, envelope, None)


class SkipsModuleHash(HeapQueue):
    def validate(self, task: Task, envelope: Envelope | None, claimed_id: str | None) -> None:
        super().validate(attrs.evolve(task, module=None), envelope, claimed_id)


class SkipsSizeLimits(HeapQueue):
    def validate(self, task: Task, envelope: Envelope | None, claimed_id: str | None) -> None:
        sized = attrs.evolve(task, input=b"", module=None) if isinstance(task, Task) else task
        super().validate(sized, envelope, None)


class OversizeIsFull(HeapQueue):
    def validate(self, task: Task, envelope: Envelope | None, claimed_id: str | None) -> None:
        try:
            super().validate(task, envelope, claimed_id)
        except RejectedError as exc:
            if exc.reason == "too_large" and "share" in exc.message:
                raise RejectedError("queue_full", "full", retry_after=1.0) from None
            raise


class Unbounded(HeapQueue):
    def is_full(self, nbytes: int) -> bool:
        return False


class NoSubmitterShare(HeapQueue):
    def over_share(self, task: Task) -> bool:
        return False


class GlobalPriority(HeapQueue):
    """Strict priority across submitters: a flood at top priority starves everyone else."""

    def push(self, task: Task) -> None:
        heapq.heappush(self.heaps.setdefault("", []), (*self.key(task, next(self.arrivals)), task.id))
        if "" not in self.turns:
            self.turns.append("")


class NoDedup(HeapQueue):
    def is_duplicate(self, task_id: str) -> bool:
        return False


class LosesCancelled(HeapQueue):
    def drop(self, task_id: str, status: Status) -> None:
        del self.queued[task_id]


class RunsExpired(HeapQueue):
    def expire(self) -> None:
        pass


class BusyNext(HeapQueue):
    """Ignores the timeout: returns None at once instead of waiting."""

    def next(self, timeout: float | None = None) -> Task | None:
        return super().next(timeout=0)


class SleepsInNext(HeapQueue):
    """Sleeps the whole timeout even when a task arrives: never woken by admit."""

    def next(self, timeout: float | None = None) -> Task | None:
        time.sleep(min(timeout or 0, 3.0))
        return super().next(timeout=0)


class DeafToClose(HeapQueue):
    def close(self) -> None:
        with self.cond:
            self.closed = True


class AdmitsAfterClose(HeapQueue):
    def _enqueue(self, task: Task) -> str:
        self.closed = False
        try:
            return super()._enqueue(task)
        finally:
            self.closed = True


class KeepsQueuedAtClose(HeapQueue):
    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class RetryHintWhenClosed(HeapQueue):
    def _enqueue(self, task: Task) -> str:
        if self.closed:
            raise RejectedError("queue_full", "closed", retry_after=1.0)
        return super()._enqueue(task)


BROKEN: list[tuple[type[HeapQueue], str]] = [
    (Lifo, "test_priority_then_earliest_deadline_then_fifo_within_a_submitter"),
    (SkipsAdmission, "test_admission_checks_run_and_rejections_are_counted"),
    (SkipsSignature, "test_refuses_a_forged_envelope"),
    (SkipsSigner, "test_refuses_a_task_signed_by_another_node"),
    (SkipsClaimedId, "test_refuses_a_wrong_claimed_id"),
    (SkipsHooks, "test_runs_the_validate_task_hooks_of_other_plugins"),
    (SkipsModuleHash, "test_refuses_module_bytes_that_do_not_match_the_module_id"),
    (SkipsSizeLimits, "test_refuses_a_module_or_input_over_the_admission_limits"),
    (OversizeIsFull, "test_a_task_larger_than_the_queue_is_too_large_not_full"),
    (SkipsAdmission, "test_anything_but_a_task_is_invalid"),
    (Unbounded, "test_count_capacity_fails_fast_with_a_retry_hint"),
    (Unbounded, "test_byte_capacity_fails_fast"),
    (NoSubmitterShare, "test_one_submitter_cannot_fill_the_queue"),
    (NoSubmitterShare, "test_one_submitter_cannot_fill_the_queue_s_bytes"),
    (GlobalPriority, "test_priority_cannot_starve_another_submitter"),
    (NoDedup, "test_duplicate_admit_is_idempotent"),
    (LosesCancelled, "test_cancel_gives_one_cancelled_result"),
    (LosesCancelled, "test_every_admitted_task_ends_exactly_once"),
    (RunsExpired, "test_expired_tasks_are_dropped_not_run"),
    (BusyNext, "test_next_honours_its_timeout"),
    (SleepsInNext, "test_blocked_next_gets_a_task_admitted_later"),
    (DeafToClose, "test_close_wakes_consumers_and_refuses_admissions"),
    (AdmitsAfterClose, "test_close_wakes_consumers_and_refuses_admissions"),
    (RetryHintWhenClosed, "test_close_wakes_consumers_and_refuses_admissions"),
    (KeepsQueuedAtClose, "test_close_cancels_what_is_queued_and_is_idempotent"),
]


def run_check(check: str, factory: QueueFactory, node_context: NodeContext) -> None:
    """Call one of the suite's checks directly, with a ``queue_with`` built on ``factory``."""
    made: list[Any] = []

    def queue_with(**settings: Any) -> Any:
        made.append(build_queue(factory, node_context, **settings))
        return made[-1]

    method = getattr(QueueTests(), check)
    assert list(inspect.signature(method).parameters) == ["queue_with"]
    try:
        method(queue_with)
    finally:
        for queue in made:
            queue.close()


@pytest.mark.parametrize(("broken", "check"), BROKEN, ids=[f"{b.__name__}-{c[5:]}" for b, c in BROKEN])
def test_suite_fails_a_broken_queue(broken: QueueFactory, check: str, node_context: NodeContext) -> None:
    run_check(check, HeapQueue, node_context)  # the check passes the correct queue...
    with pytest.raises((Exception, pytest.fail.Exception)):  # an assertion, or an error a test reports
        run_check(check, broken, node_context)  # ...and fails the broken one


def test_every_security_check_of_the_suite_has_a_broken_queue() -> None:
    checks = {name for name in dir(QueueTests) if name.startswith("test_")}
    security = {name for name in checks if name.startswith("test_refuses_")} | {
        "test_admission_checks_run_and_rejections_are_counted", "test_one_submitter_cannot_fill_the_queue",
        "test_priority_cannot_starve_another_submitter", "test_a_task_larger_than_the_queue_is_too_large_not_full",
        "test_runs_the_validate_task_hooks_of_other_plugins"}
    assert security <= {check for _, check in BROKEN}
