"""The in-memory queue: admission, fair ordering, per-submitter and global bounds, outcomes and stats.

Life of a task: :meth:`MemoryQueue.admit` validates it and queues it; :meth:`MemoryQueue.next`
hands it to a worker, which reports how it ended with :meth:`MemoryQueue.done`. A queued task
that will not run (deadline passed, cancelled, queue closed) gets its result in
:meth:`MemoryQueue.take_dropped` instead. So every admitted task ends in exactly one result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gaia_core.plugin_api import (
    Envelope,
    NodeContext,
    QueueStats,
    RejectedError,
    ReplayGuard,
    SignatureError,
    Status,
    Task,
    TaskResult,
    ValidationError,
    admission,
)
from gaia_queue_memory.options import SECTION, QueueOptions
from gaia_queue_memory.order import FairOrder
from gaia_queue_memory.stats import Counters


def task_bytes(task: Task) -> int:
    """What a queued task counts against ``[queue] capacity_bytes``: its input plus its module."""
    return len(task.input) + (len(task.module) if task.module is not None else 0)

#: (envelope, task) pairs remembered against replays, over every submitter.
REPLAY_ENTRIES = 1_000_000


class MemoryQueue:
    """A bounded, thread-safe task queue: fair share between submitters; inside one submitter,
    priority, then earliest deadline, then FIFO (see :mod:`gaia_queue_memory.order`).

    One submitter holds at most ``[queue-memory] submitter_share`` of the count and byte capacity.
    ``clock`` gives wall-clock time, against which task deadlines are compared.
    """

    def __init__(self, context: NodeContext, *, clock: Callable[[], float] = time.time) -> None:
        options = QueueOptions.from_section(context.config.section(SECTION))
        self.context = context
        self.capacity = context.config.queue.capacity
        self.capacity_bytes = context.config.queue.capacity_bytes
        self.submitter_capacity = max(1, int(self.capacity * options.submitter_share))
        self.submitter_capacity_bytes = max(1, int(self.capacity_bytes * options.submitter_share))
        self._clock = clock
        # one submitter's offers may take only its share of the replay cache, never all of it from the others
        self._guard = ReplayGuard(max_entries=REPLAY_ENTRIES,
                                  max_per_sender=max(1, int(REPLAY_ENTRIES * options.submitter_share)))
        self._order = FairOrder(options.shares)
        self._held: dict[str, list[int]] = {}  # submitter -> [queued tasks, their bytes]
        self._cond = threading.Condition(threading.Lock())
        self._queued: dict[str, tuple[Task, int, float]] = {}  # id -> (task, bytes, monotonic admit time)
        self._pending: list[tuple[str, int, float | None, str]] = []  # admitted, not yet pushed
        self._running: set[str] = set()
        self._dropped: list[TaskResult] = []
        self._bytes = 0
        self._closed = False
        self._waiting = 0  # consumers blocked in next()
        self._counters = Counters(options.wait_samples)

    # -- admission ---------------------------------------------------------------------------

    def admit(self, task: Task, *, envelope: Envelope | None = None, claimed_id: str | None = None) -> str:
        """Validate ``task`` and queue it; return its id, or raise RejectedError with a reason.

        Runs :func:`gaia_core.admission.check` (with ``claimed_id``, the id the submitter sent),
        then refuses a task replayed in an ``envelope`` seen before, then applies the queue's
        bounds: the submitter's share, then the whole queue's capacity.
        Admitting a task that is queued or running again returns its id and queues nothing.
        """
        try:
            return self._enqueue(task, *self._validate(task, envelope, claimed_id))
        except RejectedError as exc:
            with self._cond:
                self._counters.rejected[exc.reason] += 1
            raise

    def _validate(self, task: Task, envelope: Envelope | None, claimed_id: str | None) -> tuple[str, int]:
        """Every check that needs no lock; returns the task's id and byte size."""
        now = self._clock()
        admission.check(task, self.context, envelope=envelope, claimed_id=claimed_id, now=now)
        if envelope is not None:  # one envelope may carry a batch of tasks: each is accepted once
            try:
                self._guard.check(envelope, now, scope=task.id)
            except SignatureError as exc:
                raise RejectedError("bad_signature", str(exc), hint=exc.hint) from None
        task_id, nbytes = task.id, task_bytes(task)
        if nbytes > self.submitter_capacity_bytes:
            raise RejectedError("too_large", f"task holds {nbytes} bytes; this queue holds at most "
                                f"{self.submitter_capacity_bytes} per submitter",
                                hint="split the input or send the module by id")
        return task_id, nbytes

    def _enqueue(self, task: Task, task_id: str, nbytes: int) -> str:
        """Apply the bounds and queue the task (idempotent for a task queued or running)."""
        with self._cond:
            if self._closed:
                raise RejectedError("queue_full", "the queue is closed: this node is stopping",
                                    hint="send the task to another node")
            if task_id in self._queued or task_id in self._running:
                return task_id
            count, size = self._held.get(task.submitter, (0, 0))
            if count >= self.submitter_capacity or size + nbytes > self.submitter_capacity_bytes:
                raise RejectedError(
                    "queue_full", f"submitter {task.submitter[:16] or '(local)'} holds its share of this queue "
                    f"({count}/{self.submitter_capacity} tasks, {size}/{self.submitter_capacity_bytes} bytes)",
                    hint="retry later: other submitters are still admitted",
                    retry_after=self._counters.retry_after(len(self._queued)))
            held = len(self._queued) + len(self._dropped)
            if held >= self.capacity or self._bytes + nbytes > self.capacity_bytes:
                raise RejectedError(
                    "queue_full", f"queue is full ({len(self._queued)}/{self.capacity} tasks, "
                    f"{self._bytes}/{self.capacity_bytes} bytes)", hint="retry later or use another node",
                    retry_after=self._counters.retry_after(len(self._queued)))
            self._queued[task_id] = (task, nbytes, time.monotonic())
            self._pending.append((task_id, task.priority, task.deadline, task.submitter))
            self._hold(task.submitter, 1, nbytes)
            self._bytes += nbytes
            self._counters.admitted += 1
            if self._waiting:
                self._cond.notify()
        return task_id

    # -- consumers ---------------------------------------------------------------------------

    def next(self, timeout: float | None = None) -> Task | None:
        """The next task to run, waiting up to ``timeout`` seconds (forever when None).

        Tasks whose deadline passed are never returned: their ``expired`` results go to
        :meth:`take_dropped`. Returns None on timeout, and at once after :meth:`close`.
        """
        until = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                self._sync()
                task_id = self._order.pop()
                if task_id is not None:
                    task, nbytes, admitted_at = self._queued.pop(task_id)
                    self._hold(task.submitter, -1, -nbytes)
                    self._bytes -= nbytes
                    self._running.add(task_id)
                    self._counters.dispatched(task.submitter, admitted_at, time.monotonic())
                    return task
                remaining = None if until is None else until - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
        return None

    def done(self, task_id: str, status: Status | str) -> bool:
        """Record how a task handed out by :meth:`next` ended; False when it was not running.

        Until then the task counts as running: admitting it again returns its id without
        queueing it twice.
        """
        try:
            status = Status(status)
        except ValueError:
            raise ValidationError(f"unknown task status {status!r}",
                                  hint="use a gaia_core.model.Status value") from None
        with self._cond:
            if task_id not in self._running:
                return False
            self._running.discard(task_id)
            self._counters.finished[status.value] += 1
        return True

    def cancel(self, task_id: str) -> bool:
        """Drop a queued task (its ``cancelled`` result goes to :meth:`take_dropped`).

        False when the task is not queued: unknown, finished, or already handed to a runner.
        """
        with self._cond:
            self._sync()
            if not self._order.remove(task_id):
                return False
            self._drop(task_id, Status.CANCELLED, "cancelled before it ran")
        return True

    def take_dropped(self) -> list[TaskResult]:
        """Results (expired, cancelled) of admitted tasks that will not run, each given once.

        Until taken, each result holds a slot of the queue's count capacity.
        """
        with self._cond:
            self._sync()
            dropped, self._dropped = self._dropped, []
        return dropped

    def stats(self) -> QueueStats:
        """Depth, counters, wait-time percentiles and per-submitter share of dispatched tasks."""
        with self._cond:
            self._sync()
            return self._counters.snapshot(len(self._queued), self._bytes, self.capacity)

    def close(self) -> None:
        """Refuse further admissions, cancel what is queued and wake every blocked consumer."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._flush()
            for task_id in list(self._queued):
                self._order.remove(task_id)
                self._drop(task_id, Status.CANCELLED, "the queue closed before it ran")
            self._cond.notify_all()

    # -- internals (called with the lock held) -----------------------------------------------

    def _flush(self) -> None:
        """Push the tasks admitted since the last call to the scheduler in one batch."""
        if self._pending:
            self._order.push_many(self._pending)
            self._pending = []

    def _sync(self) -> None:
        """Flush pending admissions and drop every queued task whose deadline has passed."""
        self._flush()
        for task_id in self._order.pop_expired(self._clock()):
            self._drop(task_id, Status.EXPIRED, "deadline passed while queued")

    def _hold(self, submitter: str, tasks: int, nbytes: int) -> None:
        """Add to what ``submitter`` holds queued; forget it once it holds nothing."""
        held = self._held.setdefault(submitter, [0, 0])
        held[0] += tasks
        held[1] += nbytes
        if not held[0]:
            del self._held[submitter]

    def _drop(self, task_id: str, status: Status, message: str) -> None:
        task, nbytes, _ = self._queued.pop(task_id)
        self._hold(task.submitter, -1, -nbytes)
        self._bytes -= nbytes
        self._dropped.append(TaskResult(task_id=task_id, status=status, message=message))
        self._counters.finished[status.value] += 1
