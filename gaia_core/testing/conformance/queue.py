"""Conformance suite for the queue role (:class:`gaia_core.roles.Queue`).

Subclass :class:`QueueTests` in your plugin's tests and provide a ``make_queue`` fixture returning
the callable your :class:`~gaia_core.roles.QueueSpec` registers (every suite asks for
``make_<role>``, the factory of its spec)::

    from gaia_core.testing.conformance.queue import QueueTests

    class TestMyQueue(QueueTests):
        @pytest.fixture
        def make_queue(self):
            return MyQueue

Each check receives ``queue_with(**queue_config)``, which builds a queue from a node context whose
``[queue]`` table is ``queue_config`` (task kind ``wasm`` is runnable); queues it builds are closed
after the test.

The checks, security first: ``admit`` runs the kernel's :func:`gaia_core.admission.check` (sizes,
claimed id, module hash, envelope signature and signer, runner, limits, deadline, the other plugins'
``gaia_validate_task`` hooks) and counts each rejection; a task too large for the queue is
``too_large``, a full queue ``queue_full`` with a retry hint; one submitter cannot fill the queue
nor, at any priority, starve another submitter (priority orders a submitter's own tasks, then
earliest deadline, then FIFO); anything but a Task is ``invalid``. Then the life cycle: duplicates
are idempotent; cancel and expiry give exactly one result through ``take_dropped``; ``next`` honours
its timeout, wakes on admit and on ``close``; ``close`` cancels what is queued, refuses admissions
(no retry hint) and is idempotent; concurrent consumers never get a task twice. Every wait is
bounded.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs
import pluggy
import pytest

from gaia_core import hookimpl, plugins
from gaia_core.config import AdmissionSection, QueueSection
from gaia_core.envelope import seal
from gaia_core.errors import RejectedError, ValidationError
from gaia_core.identity import Identity
from gaia_core.model import MAX_TIME, PRIORITY_RANGE, Limits, Status, Task
from gaia_core.roles import NodeContext, Queue

QueueFactory = Callable[[NodeContext], Queue]
QueueWith = Callable[..., Queue]

#: Module id of the tasks the suite builds without module bytes.
MODULE_ID = "ab" * 32
#: Module bytes of the tasks the suite builds with a module (never run: queues do not run tasks).
MODULE = b"\x00asm\x01\x00\x00\x00 queue conformance"
#: Slack allowed on every timing check, in seconds.
SLACK_S = 2.0


def make_task(n: int = 0, **fields: Any) -> Task:
    """A small distinct task (input ``task-<n>``) of kind ``wasm``; ``fields`` override Task fields."""
    return Task(module_id=MODULE_ID, input=f"task-{n}".encode(), **fields)


def submitter(n: int) -> str:
    """A distinct, well-formed submitter id."""
    return f"{n:064x}"


def build_queue(factory: QueueFactory, context: NodeContext, *, admission: AdmissionSection | None = None,
                hook: pluggy.HookRelay | None = None, **queue_config: int) -> Queue:
    """``factory(context)`` with ``context``'s ``[queue]`` table replaced by ``queue_config``
    (and its ``[admission]`` table by ``admission``, its plugin hooks by ``hook``, when given)."""
    config = attrs.evolve(context.config, queue=QueueSection(**queue_config),
                          admission=admission or context.config.admission)
    return factory(attrs.evolve(context, config=config, hook=hook or context.hook))


class RefusesPriority7:
    """A ``gaia_validate_task`` plugin that refuses tasks of priority 7 (reason ``invalid``)."""

    @hookimpl
    def gaia_validate_task(self, task: Task, envelope: object, context: NodeContext) -> None:
        if task.priority == 7:
            raise RejectedError("invalid", "priority 7 is refused by a validation plugin")


#: Most tasks :func:`drain` takes, so a queue that never runs dry fails instead of hanging.
DRAIN_LIMIT = 10_000


def drain(queue: Queue) -> list[Task]:
    """Every task ``queue.next`` hands out until it has none (without waiting), at most DRAIN_LIMIT."""
    out: list[Task] = []
    for _ in range(DRAIN_LIMIT):
        task = queue.next(timeout=0)
        if task is None:
            return out
        out.append(task)
    raise AssertionError(f"queue still hands out tasks after {DRAIN_LIMIT}")


def refused(queue: Queue, task: object, reason: str, **kwargs: object) -> RejectedError:
    """Assert that ``queue.admit(task, **kwargs)`` raises RejectedError with ``reason``; return it."""
    with pytest.raises(RejectedError) as info:
        queue.admit(task, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason == reason, f"expected {reason!r}, got {info.value.reason!r}: {info.value}"
    assert info.value.message, "a rejection must say what was wrong"
    return info.value


_T = TypeVar("_T")


def timed(call: Callable[[], _T]) -> tuple[_T, float]:
    """``call()``'s value and how many seconds it took."""
    started = time.monotonic()
    value = call()
    return value, time.monotonic() - started


class QueueTests:
    """The contract every queue provider keeps. Provide the ``make_queue`` fixture."""

    @pytest.fixture
    def make_queue(self) -> QueueFactory:
        """Override: return the callable that builds your queue from a NodeContext."""
        raise NotImplementedError("subclass QueueTests and provide a `make_queue` fixture")

    @pytest.fixture
    def queue_with(self, make_queue: QueueFactory, node_context: NodeContext) -> Iterator[QueueWith]:
        made: list[Queue] = []

        def build(**settings: object) -> Queue:
            queue = build_queue(make_queue, node_context, **settings)  # type: ignore[arg-type]
            made.append(queue)
            return queue

        yield build
        for queue in made:
            queue.close()

    # -- admission: the kernel's checks ------------------------------------------------------

    def test_admit_returns_the_task_id(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        task = make_task()
        assert queue.admit(task) == task.id
        stats = queue.stats()
        assert stats.depth == 1 and stats.admitted == 1

    def test_admission_checks_run_and_rejections_are_counted(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        refused(queue, make_task(kind="unknown-kind"), "no_runner")
        refused(queue, make_task(limits=Limits(fuel=10**30)), "over_limits")
        refused(queue, make_task(deadline=time.time() - 10), "expired")
        stats = queue.stats()
        assert stats.depth == 0 and stats.admitted == 0
        assert stats.rejected == {"no_runner": 1, "over_limits": 1, "expired": 1}

    def test_refuses_a_forged_envelope(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        alice = Identity.generate()
        task = make_task(submitter=alice.node_id)
        envelope = seal(alice, "task", b"offer")
        refused(queue, task, "bad_signature", envelope=attrs.evolve(envelope, body=b"altered"))
        refused(queue, task, "bad_signature", envelope=attrs.evolve(envelope, signature=b""))
        assert queue.admit(task, envelope=envelope) == task.id

    def test_refuses_a_task_signed_by_another_node(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        alice, mallory = Identity.generate(), Identity.generate()
        refused(queue, make_task(submitter=alice.node_id), "bad_signature", envelope=seal(mallory, "task", b"x"))

    def test_refuses_a_wrong_claimed_id(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        task = make_task()
        refused(queue, task, "bad_id", claimed_id=make_task(1).id)
        assert queue.admit(task, claimed_id=task.id) == task.id

    def test_refuses_module_bytes_that_do_not_match_the_module_id(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        task = Task.create(MODULE, input=b"x")
        refused(queue, attrs.evolve(task, module=MODULE + b"\x00"), "bad_module")
        assert queue.admit(task) == task.id

    def test_refuses_a_module_or_input_over_the_admission_limits(self, queue_with: QueueWith) -> None:
        queue = queue_with(admission=AdmissionSection(max_module_bytes=len(MODULE), max_input_bytes=16))
        refused(queue, Task.create(MODULE + b"\x00", input=b"x"), "too_large")
        refused(queue, Task.create(MODULE, input=b"x" * 17), "too_large")
        assert queue.stats().rejected == {"too_large": 2}
        queue.admit(Task.create(MODULE, input=b"x" * 16))

    def test_runs_the_validate_task_hooks_of_other_plugins(self, queue_with: QueueWith) -> None:
        registry = plugins.Plugins(plugins.new_manager(), {})
        registry.register(RefusesPriority7(), "refuses-priority-7")
        queue = queue_with(hook=registry.hook)
        assert "validation plugin" in refused(queue, make_task(priority=7), "invalid").message
        queue.admit(make_task(priority=6))

    def test_anything_but_a_task_is_invalid(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        for junk in (b"task bytes", None, {"module_id": MODULE_ID}, attrs.asdict(make_task())):
            refused(queue, junk, "invalid")
        assert queue.stats().rejected == {"invalid": 4} and queue.stats().depth == 0

    def test_a_nan_deadline_never_reaches_a_queue(self, queue_with: QueueWith) -> None:
        with pytest.raises(ValidationError):
            make_task(deadline=math.nan)  # the model refuses it, at construction and at decode
        queue = queue_with()
        far = make_task(1, deadline=MAX_TIME)
        near = make_task(2, deadline=time.time() + 3600)
        queue.admit(far)
        queue.admit(near)
        assert drain(queue) == [near, far]

    # -- bounds --------------------------------------------------------------------------------

    def test_count_capacity_fails_fast_with_a_retry_hint(self, queue_with: QueueWith) -> None:
        queue = queue_with(capacity=2)
        queue.admit(make_task(1, submitter=submitter(1)))
        queue.admit(make_task(2, submitter=submitter(2)))
        error, took = timed(lambda: refused(queue, make_task(3, submitter=submitter(3)), "queue_full"))
        assert took < SLACK_S, "admit must fail fast, never block"
        assert error.retry_after is not None and error.retry_after > 0
        assert queue.stats().rejected == {"queue_full": 1}
        assert queue.next(timeout=0) is not None
        queue.admit(make_task(3, submitter=submitter(3)))
        assert queue.stats().depth == 2

    def test_byte_capacity_fails_fast(self, queue_with: QueueWith) -> None:
        queue = queue_with(capacity_bytes=100)
        for n in range(3):
            queue.admit(Task(module_id=MODULE_ID, input=bytes([n]) * 30, submitter=submitter(n)))
        error = refused(queue, Task(module_id=MODULE_ID, input=b"z" * 30, submitter=submitter(9)), "queue_full")
        assert error.retry_after is not None and error.retry_after > 0
        assert queue.stats().depth == 3

    def test_a_task_larger_than_the_queue_is_too_large_not_full(self, queue_with: QueueWith) -> None:
        queue = queue_with(capacity_bytes=100)
        error = refused(queue, Task(module_id=MODULE_ID, input=b"x" * 101), "too_large")
        assert error.retry_after is None, "retrying a task that can never fit is pointless"
        assert queue.stats().rejected == {"too_large": 1} and queue.stats().depth == 0

    def test_one_submitter_cannot_fill_the_queue(self, queue_with: QueueWith) -> None:
        capacity = 10
        queue = queue_with(capacity=capacity)
        held = 0
        for n in range(capacity + 1):
            try:
                queue.admit(make_task(n, submitter=submitter(1), priority=1000))
            except RejectedError as exc:
                assert exc.reason == "queue_full" and exc.retry_after is not None and exc.retry_after > 0
                break
            held += 1
        assert held < capacity, f"one submitter filled the whole queue ({held}/{capacity})"
        queue.admit(make_task(0, submitter=submitter(2)))

    def test_one_submitter_cannot_fill_the_queue_s_bytes(self, queue_with: QueueWith) -> None:
        queue = queue_with(capacity=1000, capacity_bytes=1000)
        held = 0
        for n in range(11):
            try:
                queue.admit(Task(module_id=MODULE_ID, input=bytes([n]) * 100, submitter=submitter(1)))
            except RejectedError as exc:
                assert exc.reason == "queue_full"
                break
            held += 100
        assert held < 1000, "one submitter filled every byte of the queue"
        queue.admit(Task(module_id=MODULE_ID, input=b"y" * 100, submitter=submitter(2)))

    # -- ordering ------------------------------------------------------------------------------

    def test_priority_then_earliest_deadline_then_fifo_within_a_submitter(self, queue_with: QueueWith) -> None:
        low, high = PRIORITY_RANGE
        for outside in (low - 1, high + 1):
            with pytest.raises(ValidationError):
                make_task(priority=outside)  # the model refuses it: a queue sees only -1000..1000
        queue = queue_with()
        soon, later = time.time() + 3600, time.time() + 7200
        tasks = [
            make_task(0), make_task(1, priority=5), make_task(2, deadline=later), make_task(3),
            make_task(4, deadline=soon), make_task(5, priority=5), make_task(6, priority=-1),
            make_task(7, priority=1000), make_task(8, priority=-1000),
        ]
        for task in tasks:
            queue.admit(task)
        order = [int(t.input.decode().split("-")[1]) for t in drain(queue)]
        assert order == [7, 1, 5, 4, 2, 0, 3, 6, 8]

    def test_priority_cannot_starve_another_submitter(self, queue_with: QueueWith) -> None:
        queue = queue_with(capacity=100)
        flood = [make_task(n, submitter=submitter(1), priority=1000) for n in range(20)]
        for task in flood:
            queue.admit(task)
        other = make_task(0, submitter=submitter(2), priority=-1000)
        queue.admit(other)
        first = [queue.next(timeout=0) for _ in range(2)]
        assert other in first, "a flood at top priority from one submitter starved another submitter"

    # -- outcomes ------------------------------------------------------------------------------

    def test_duplicate_admit_is_idempotent(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        task = make_task()
        assert queue.admit(task) == queue.admit(make_task()) == task.id
        assert queue.stats().depth == 1
        assert drain(queue) == [task]
        assert queue.admit(task) == task.id  # handed out, not finished: still not queued twice
        assert drain(queue) == []

    def test_cancel_gives_one_cancelled_result(self, queue_with: QueueWith) -> None:
        queue = queue_with()
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

    def test_expired_tasks_are_dropped_not_run(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        short, open_ended = make_task(1, deadline=time.time() + 0.3), make_task(2)
        queue.admit(short)
        queue.admit(open_ended)
        time.sleep(0.5)
        assert drain(queue) == [open_ended]
        assert [(r.task_id, r.status) for r in queue.take_dropped()] == [(short.id, Status.EXPIRED)]
        assert queue.stats().finished.get("expired") == 1

    def test_every_admitted_task_ends_exactly_once(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        tasks = [make_task(i) for i in range(20)]
        for task in tasks:
            queue.admit(task)
        cancelled = {t.id for t in tasks[::3] if queue.cancel(t.id)}
        ran = [t.id for t in drain(queue)]
        dropped = [r.task_id for r in queue.take_dropped()]
        assert len(ran) == len(set(ran))
        assert set(dropped) == cancelled and len(dropped) == len(cancelled)
        assert sorted(ran + dropped) == sorted(t.id for t in tasks)

    def test_done_records_the_outcome_once(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        task = make_task(1)
        queue.admit(task)
        assert queue.next(timeout=1.0) == task
        assert queue.done(task.id, Status.OK) is True
        assert queue.done(task.id, Status.OK) is False
        assert queue.stats().finished.get("ok") == 1
        assert queue.admit(task) == task.id and queue.next(timeout=1.0) == task  # finished work may run again

    # -- blocking, close and threads -----------------------------------------------------------

    def test_next_honours_its_timeout(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        got, took = timed(lambda: queue.next(timeout=0))
        assert got is None and took < SLACK_S, f"next(timeout=0) took {took:.2f}s"
        got, took = timed(lambda: queue.next(timeout=0.2))
        assert got is None and 0.15 <= took < 0.2 + SLACK_S, f"next(timeout=0.2) returned after {took:.2f}s"

    def test_blocked_next_gets_a_task_admitted_later(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        got: list[Task | None] = []
        consumer = threading.Thread(target=lambda: got.append(queue.next(timeout=10)), daemon=True)
        consumer.start()
        time.sleep(0.05)
        task = make_task()

        def admit_then_join() -> None:
            queue.admit(task)
            consumer.join(SLACK_S)

        _, took = timed(admit_then_join)
        assert got == [task] and took < SLACK_S, "a consumer blocked in next() was not woken by admit"

    def test_close_wakes_consumers_and_refuses_admissions(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        got: list[Task | None] = []
        consumers = [threading.Thread(target=lambda: got.append(queue.next(timeout=30)), daemon=True)
                     for _ in range(3)]
        for consumer in consumers:
            consumer.start()
        time.sleep(0.05)
        started = time.monotonic()
        queue.close()
        for consumer in consumers:
            consumer.join(max(0.0, started + SLACK_S - time.monotonic()))
        assert got == [None, None, None], "close() must wake every consumer blocked in next()"
        error = refused(queue, make_task(), "queue_full")
        assert error.retry_after is None, "a closed queue will not take the task later: no retry hint"
        _, took = timed(lambda: queue.next(timeout=10))
        assert took < SLACK_S, "next() after close() must return None at once"

    def test_close_cancels_what_is_queued_and_is_idempotent(self, queue_with: QueueWith) -> None:
        queue = queue_with()
        running, waiting = make_task(1), make_task(2)
        queue.admit(running)
        assert queue.next(timeout=0) == running
        queue.admit(waiting)
        queue.close()
        queue.close()
        assert [(r.task_id, r.status) for r in queue.take_dropped()] == [(waiting.id, Status.CANCELLED)]
        assert queue.done(running.id, Status.OK) is True  # a task running at close still reports once

    def test_concurrent_consumers_never_share_a_task(self, queue_with: QueueWith) -> None:
        queue = queue_with(capacity=1000)
        tasks = [make_task(i, submitter=submitter(i % 3)) for i in range(300)]
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
