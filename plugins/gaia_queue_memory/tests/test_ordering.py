"""Fair share between submitters, configured weights, stats, done() and the config table."""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings, strategies as st

from gaia_core.config import Config, Home, QueueSection
from gaia_core.errors import ConfigError, RejectedError, ValidationError
from gaia_core.model import Status, Task
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.queue import MODULE_ID, drain
from gaia_queue_memory import MemoryQueue
from gaia_queue_memory.order import FairOrder
from gaia_queue_memory.stats import LOCAL, percentile

ALICE, BOB, CAROL = (c * 64 for c in "abc")


def task(n: int, submitter: str = "", **fields: object) -> Task:
    return Task(module_id=MODULE_ID, input=f"{submitter[:1]}{n}".encode(), submitter=submitter, **fields)


def queue_with(context: NodeContext, extra: dict | None = None, **queue_config: int) -> MemoryQueue:
    config = attrs.evolve(context.config, queue=QueueSection(**queue_config), extra=extra or {})
    return MemoryQueue(attrs.evolve(context, config=config))


def submitters(tasks: list[Task]) -> str:
    return "".join(t.submitter[:1] for t in tasks)


def test_a_flood_from_one_submitter_does_not_starve_another(node_context: NodeContext) -> None:
    queue = queue_with(node_context)
    for i in range(50):
        queue.admit(task(i, ALICE))
    for i in range(3):
        queue.admit(task(i, BOB))
    assert submitters(drain(queue)[:6]) == "ababab"


def test_shares_weight_the_fair_share(node_context: NodeContext) -> None:
    queue = queue_with(node_context, {"queue-memory": {"shares": {ALICE: 2.0}}})
    for i in range(20):
        queue.admit(task(i, ALICE))
        queue.admit(task(i, BOB))
    first = submitters(drain(queue)[:12])
    assert first.count("a") == 8 and first.count("b") == 4


def test_priority_orders_only_a_submitters_own_tasks(node_context: NodeContext) -> None:
    queue = queue_with(node_context)
    for i in range(5):
        queue.admit(task(i, ALICE, priority=1000))
    queue.admit(task(0, BOB, priority=-1000))
    queue.admit(task(1, BOB, priority=5))
    queue.admit(task(5, ALICE, priority=999))
    ran = drain(queue)
    assert submitters(ran) == "ababaaaa"
    assert [t.priority for t in ran if t.submitter == BOB] == [5, -1000]
    assert [t.priority for t in ran if t.submitter == ALICE] == [1000] * 5 + [999]


def test_a_flood_at_top_priority_cannot_starve_another_submitter(node_context: NodeContext) -> None:
    """#12: one identity queued 10,001 tasks at priority 1000 and another job got 0 of 5 done.
    Now the flood is refused past its share, the other job is admitted and served alternately."""
    capacity = 1_000
    queue = queue_with(node_context, capacity=capacity)
    flooded = 0
    for i in range(capacity + 1):  # bounded: one more than the whole queue
        try:
            queue.admit(task(i, ALICE, priority=1000))
        except RejectedError as exc:
            assert exc.reason == "queue_full" and exc.retry_after and "share" in exc.message
            break
        flooded += 1
    assert flooded == capacity // 2
    legit = [task(i, BOB) for i in range(5)]
    for t in legit:
        queue.admit(t)
    started = time.monotonic()
    order = [queue.next(timeout=0) for _ in range(10)]
    assert time.monotonic() - started < 5
    assert submitters(order) == "ab" * 5
    assert queue.stats().rejected == {"queue_full": 1}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([ALICE, BOB, CAROL]), min_size=1, max_size=60))
def test_backlogged_submitters_stay_within_one_task(arrivals: list[str]) -> None:
    """Equal weights, everything queued before draining: at every point of the drain, the
    submitters that still have tasks queued have been served within one task of each other."""
    queue = MemoryQueue(NodeContext(config=Config(), home=Home(Path("unused")), task_kinds=frozenset({"wasm"})))
    for i, who in enumerate(arrivals):
        queue.admit(task(i, who))
    left = {who: arrivals.count(who) for who in set(arrivals)}
    served = dict.fromkeys(left, 0)
    for ran in drain(queue):
        backlogged = [who for who in left if left[who] > 0]
        assert served[ran.submitter] == min(served[who] for who in backlogged)
        served[ran.submitter] += 1
        left[ran.submitter] -= 1
    assert not any(left.values())


def test_stats_report_waits_share_and_outcomes(node_context: NodeContext) -> None:
    queue = queue_with(node_context)
    for i in range(3):
        queue.admit(task(i, ALICE))
    queue.admit(task(0))
    queue.admit(task(9, BOB))
    assert queue.cancel(task(9, BOB).id)
    ran = drain(queue)
    for t in ran[:2]:
        assert queue.done(t.id, Status.OK)
    assert queue.done(ran[2].id, "trap")
    assert not queue.done(ran[2].id, Status.OK)  # reported twice
    assert not queue.done("f" * 64, Status.OK)  # never handed out
    stats = queue.stats()
    assert (stats.depth, stats.depth_bytes, stats.admitted) == (0, 0, 5)
    assert stats.finished == {"ok": 2, "trap": 1, "cancelled": 1}
    assert stats.share == {ALICE: 0.75, LOCAL: 0.25}
    assert 0 <= stats.wait_p50_s <= stats.wait_p99_s


def test_done_refuses_an_unknown_status(node_context: NodeContext) -> None:
    queue = queue_with(node_context)
    queue.admit(task(1))
    with pytest.raises(ValidationError, match="unknown task status"):
        queue.done(task(1).id, "finished-ish")


def test_a_finished_task_may_be_admitted_again(node_context: NodeContext) -> None:
    queue = queue_with(node_context)
    queue.admit(task(1))
    ran = queue.next(timeout=0)
    queue.done(ran.id, Status.ERROR)
    queue.admit(task(1))
    assert queue.next(timeout=0) == ran


def test_close_cancels_what_is_queued(node_context: NodeContext) -> None:
    queue = queue_with(node_context)
    queue.admit(task(1))
    queue.admit(task(2))
    queue.close()
    queue.close()
    assert sorted(r.status.value for r in queue.take_dropped()) == ["cancelled", "cancelled"]
    assert queue.next(timeout=0) is None


def test_undelivered_dropped_results_hold_their_slots(node_context: NodeContext) -> None:
    queue = queue_with(node_context, capacity=1)
    queue.admit(task(1))
    queue.cancel(task(1).id)
    with pytest.raises(ValidationError, match="queue is full"):
        queue.admit(task(2))
    assert len(queue.take_dropped()) == 1
    queue.admit(task(2))


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0], 0.99) == 1.0
    values = [float(i) for i in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99)) == (50.0, 99.0)


@pytest.mark.parametrize(("table", "message"), [
    ({"shares": {ALICE: 0}}, "is not a positive number"),
    ({"shares": {ALICE: "lots"}}, "is not a positive number"),
    ({"shares": [ALICE]}, "must be a table"),
    ({"wait_samples": 0}, "must be a positive integer"),
    ({"submitter_share": 0}, "must be a fraction"),
    ({"submitter_share": 1.5}, "must be a fraction"),
    ({"submitter_share": float("nan")}, "must be a fraction"),
    ({"queue_depth": 5}, "unknown keys"),
])
def test_bad_config_table_is_a_config_error(node_context: NodeContext, table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        queue_with(node_context, {"queue-memory": table})


def test_the_deadline_heap_of_served_tasks_does_not_grow_for_ever() -> None:
    order = FairOrder({})
    for round_ in range(5):
        order.push_many([(f"{round_}-{i}", 0, 1e9 + i, ALICE) for i in range(1_000)])
        assert [order.pop() for _ in range(1_000)][-1] == f"{round_}-999"
    order.push_many([("last", 0, 2e9, BOB)])
    assert len(order) == 1 and len(order._deadlines) <= 2 * len(order) + 64
    assert order.pop_expired(2e9 + 1) == ["last"] and order.pop() is None


def test_an_idle_queue_forgets_every_submitter_it_served() -> None:
    """300 identities sending one task each leave nothing behind once served."""
    order = FairOrder({ALICE: 2.0})
    for n in range(300):
        order.push_many([(f"t{n}", 0, None, f"{n:064x}")])
        assert order.pop() == f"t{n}"
    assert not order._subs and not order._turns and not order._turn_owner
    assert order._top.served(f"{299:064x}") == 0.0  # the fair-share level started afresh
    order.push_many([(f"a{i}", 0, None, ALICE) for i in range(3)] + [(f"b{i}", 0, None, BOB) for i in range(2)])
    assert [order.pop() for _ in range(5)] == ["a0", "b0", "a1", "a2", "b1"]  # ALICE's weight 2 survives
