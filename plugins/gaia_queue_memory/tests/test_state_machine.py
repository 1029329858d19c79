"""Hypothesis state machine: admit / next / done / cancel / time passing / take_dropped in any order.

A plain-Python model tracks what the queue must hold. Invariants: no admitted task is lost or
ends twice, none is handed out twice, no submitter holds more than its share, every task handed
out is its submitter's highest-priority, then earliest-deadline, then oldest task, and the
counters agree.
"""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gaia_core.config import Config, Home, QueueSection
from gaia_core.errors import RejectedError
from gaia_core.model import Status, Task
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.queue import MODULE_ID
from gaia_queue_memory import MemoryQueue

CAPACITY = 6
SHARE = CAPACITY // 2  # tasks one submitter may hold ([queue-memory] submitter_share = 0.5)
START = 1_000_000.0
SUBMITTERS = ("", "a" * 64, "b" * 64)


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = START
        config = Config(queue=QueueSection(capacity=CAPACITY))
        context = NodeContext(config=config, home=Home(Path("unused")), task_kinds=frozenset({"wasm"}))
        self.queue = MemoryQueue(context, clock=lambda: self.now)
        self.arrival = 0
        self.queued: dict[str, tuple[Task, int]] = {}  # id -> (task, arrival)
        self.running: set[str] = set()
        self.undelivered: list[tuple[str, Status]] = []  # dropped, not yet taken
        self.outcomes: dict[str, list[str]] = {}  # id -> one outcome per admission
        self.admitted = 0

    def sync(self) -> None:
        """What the queue does on next/cancel/take_dropped/stats: drop tasks past their deadline."""
        for task_id, (task, _) in list(self.queued.items()):
            if task.deadline is not None and task.deadline < self.now:
                del self.queued[task_id]
                self.undelivered.append((task_id, Status.EXPIRED))

    @rule(n=st.integers(0, 12), priority=st.integers(-1, 1), submitter=st.sampled_from(SUBMITTERS),
          expires_in=st.none() | st.floats(-1.0, 5.0))
    def admit(self, n: int, priority: int, submitter: str, expires_in: float | None) -> None:
        deadline = None if expires_in is None else self.now + expires_in
        task = Task(module_id=MODULE_ID, input=b"%d" % n, priority=priority, submitter=submitter,
                    deadline=deadline)
        if deadline is not None and deadline <= self.now:
            expected = "expired"
        elif task.id in self.queued or task.id in self.running:
            expected = None
        elif sum(t.submitter == submitter for t, _ in self.queued.values()) >= SHARE:
            expected = "queue_full"
        elif len(self.queued) + len(self.undelivered) >= CAPACITY:
            expected = "queue_full"
        else:
            expected = "admitted"
        try:
            assert self.queue.admit(task) == task.id
        except RejectedError as exc:
            assert exc.reason == expected
            return
        assert expected in (None, "admitted")
        if expected == "admitted":
            self.queued[task.id] = (task, self.arrival)
            self.arrival += 1
            self.admitted += 1

    @rule()
    def next(self) -> None:
        self.sync()
        task = self.queue.next(timeout=0)
        if task is None:
            assert not self.queued
            return
        assert task.id in self.queued and task.id not in self.running

        def order(entry: tuple[Task, int]) -> tuple[int, float, int]:
            t, arrival = entry
            return (-t.priority, math.inf if t.deadline is None else t.deadline, arrival)

        own = [e for e in self.queued.values() if e[0].submitter == task.submitter]
        assert min(own, key=order)[0].id == task.id  # priority orders a submitter's own tasks only
        del self.queued[task.id]
        self.running.add(task.id)

    @precondition(lambda self: self.running)
    @rule(data=st.data(), status=st.sampled_from([Status.OK, Status.TRAP, Status.TIMEOUT]))
    def done(self, data: st.DataObject, status: Status) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.running)))
        assert self.queue.done(task_id, status)
        self.running.discard(task_id)
        self.outcomes.setdefault(task_id, []).append(status.value)

    @precondition(lambda self: self.queued)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.queued)))
        self.sync()
        assert self.queue.cancel(task_id) == (task_id in self.queued)
        if task_id in self.queued:
            del self.queued[task_id]
            self.undelivered.append((task_id, Status.CANCELLED))

    @rule(seconds=st.floats(0.0, 3.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def take_dropped(self) -> None:
        self.sync()
        results = self.queue.take_dropped()
        assert sorted((r.task_id, r.status.value) for r in results) == sorted(
            (task_id, status.value) for task_id, status in self.undelivered)
        for result in results:
            self.outcomes.setdefault(result.task_id, []).append(result.status.value)
        self.undelivered.clear()

    @invariant()
    def counters_agree(self) -> None:
        self.sync()
        stats = self.queue.stats()
        assert stats.depth == len(self.queued)
        assert stats.admitted == self.admitted
        ended = sum(len(o) for o in self.outcomes.values()) + len(self.undelivered)
        assert sum(stats.finished.values()) == ended
        assert self.admitted == ended + len(self.queued) + len(self.running)

    def teardown(self) -> None:
        self.queue.close()
        closed = self.queue.take_dropped()
        assert all(r.status is Status.CANCELLED for r in closed if r.task_id in self.queued)
        assert sorted(r.task_id for r in closed) == sorted([*self.queued, *(i for i, _ in self.undelivered)])


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
