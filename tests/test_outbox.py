"""Undelivered results are bounded per submitter, in all and in age, and delivered per submitter.

The Outbox runs on an injected clock (milliseconds, no sleeps); the node test uses real in-process nodes:
a submitter that accepts result deliveries and never answers must not delay another submitter's results.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from inprocess import Recorder, build_node, load_plugins, make_home, running, wait_for
from nodes import echo_tasks

from gaia_core.model import Envelope, Status, TaskResult
from gaia_core.outbox import BACKOFF_MAX_S, BACKOFF_MIN_S, Outbox

A, B = "aa" * 32, "bb" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _result(i: int, size: int = 1000) -> TaskResult:
    return TaskResult(task_id=f"{i:064x}", status=Status.OK, output=b"x" * size)


def _outbox(clock: Clock, *, per: int = 10_000, total: int = 100_000, age: float = 60.0) -> Outbox:
    return Outbox(per_submitter_bytes=per, total_bytes=total, max_age_s=age, clock=clock)


def test_one_submitter_is_bounded_in_bytes_oldest_dropped_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    box = _outbox(Clock(), per=10_000)
    with caplog.at_level(logging.INFO, logger="gaia.outbox"):
        for i in range(50):
            box.put(A, _result(i), None)
    stats = box.stats()
    assert stats["bytes"] <= 10_000 and stats["dropped_full"] == 50 - stats["results"] > 0
    kept = [p.result.task_id for p in box.take(A, 100)]
    assert kept == [f"{i:064x}" for i in range(50 - len(kept), 50)]  # the newest survive
    assert len([r for r in caplog.records if "dropping undelivered results" in r.getMessage()]) == 1


def test_the_global_bound_takes_from_the_largest_holder_not_from_a_small_one() -> None:
    box = _outbox(Clock(), per=50_000, total=30_000)
    for i in range(5):
        box.put(B, _result(100 + i), None)
    for i in range(40):
        box.put(A, _result(i), None)
    assert box.stats()["bytes"] <= 30_000
    assert len(box.take(B, 100)) == 5


def test_failing_submitters_never_take_every_delivery_slot() -> None:
    clock = Clock()
    box = Outbox(per_submitter_bytes=10_000, total_bytes=1_000_000, max_age_s=3600.0, failing_slots=2, clock=clock)
    failing = [f"{i:02x}" * 32 for i in range(5)]
    for submitter in failing:
        box.put(submitter, _result(1), None)
        box.failed(submitter, box.take(submitter, 10))
    clock.now += BACKOFF_MAX_S
    chosen = box.ready()
    assert len(chosen) == 2
    for submitter in chosen:  # both hang in delivery
        box.take(submitter, 10)
    assert box.ready() == []
    box.put(A, _result(2), None)
    assert box.ready() == [A]  # a healthy submitter is still served


def test_results_put_back_after_a_failed_delivery_stay_within_the_global_bound() -> None:
    box = _outbox(Clock(), per=50_000, total=10_000)
    for i in range(5):
        box.put(A, _result(i), None)
    taken = box.take(A, 10)
    for i in range(9):
        box.put(B, _result(100 + i), None)
    box.failed(A, taken)
    assert box.stats()["bytes"] <= 10_000 and box.stats()["dropped_full"] > 0


def test_results_older_than_the_retention_are_dropped_once_delivery_failed() -> None:
    clock = Clock()
    box = _outbox(clock, age=60.0)
    box.put(A, _result(1), None)
    box.put(B, _result(3), None)
    clock.now += 30
    box.put(A, _result(2), None)
    clock.now += 31
    assert set(box.ready()) == {A, B}  # never tried: kept, however old
    wait = box.failed(A, box.take(A, 10))
    clock.now += wait
    assert set(box.ready()) == {A, B}
    assert [p.result.task_id for p in box.take(A, 10)] == [f"{2:064x}"]
    assert len(box.take(B, 10)) == 1
    assert box.stats()["dropped_expired"] == 1


def test_zero_retention_still_tries_each_result_once() -> None:
    clock = Clock()
    box = _outbox(clock, age=0.0)
    box.put(A, _result(1), None)
    clock.now += 1
    assert box.ready() == [A] and len(box.take(A, 10)) == 1


def test_a_failing_submitter_backs_off_while_others_stay_ready() -> None:
    clock = Clock()
    box = _outbox(clock, age=3600.0)
    box.put(A, _result(1), None)
    box.put(B, _result(2), None)
    assert set(box.ready()) == {A, B}
    taken = box.take(A, 10)
    assert box.ready() == [B]  # one delivery per submitter at a time
    waits = []
    for _ in range(12):
        waits.append(box.failed(A, taken))
        assert box.ready() == [B] and set(box.ready(ignore_backoff=True)) == {A, B}
        clock.now += waits[-1]
        assert A in box.ready()
        taken = box.take(A, 10)
    assert waits[0] == pytest.approx(BACKOFF_MIN_S) and waits[-1] == BACKOFF_MAX_S
    assert waits == sorted(waits)
    box.delivered(A)
    assert box.stats() == {"results": 1, "bytes": box.stats()["bytes"], "submitters": 1}


def test_an_unanswering_submitter_never_delays_another_submitters_results(tmp_path: Path) -> None:
    recorder = Recorder()
    worker = build_node(make_home(tmp_path, "worker"), load_plugins((recorder, "recorder")))
    release = threading.Event()
    with running(worker, drain_s=2.0):
        joined = {"network": {"bootstrap": [worker.address]}}
        black_hole = build_node(make_home(tmp_path, "black-hole", joined), load_plugins())
        answer = black_hole.on_request

        def never_answer(envelope: Envelope) -> bytes:  # takes results and holds the worker's request
            if envelope.kind == "task.results":
                release.wait(30)
            return answer(envelope)

        black_hole.on_request = never_answer  # type: ignore[method-assign]
        submitter = build_node(make_home(tmp_path, "submitter", joined), load_plugins())
        with running(black_hole, drain_s=1.0), running(submitter, drain_s=2.0):
            wait_for(lambda: {black_hole.node_id, submitter.node_id} <= set(worker.peer_records), timeout=30,
                     what="the worker to know both")
            wait_for(lambda: worker.node_id in submitter.peer_records, timeout=30, what="the submitter to know it")
            stuck = echo_tasks([b"for the black hole"], black_hole.node_id)[0]
            worker.admit(stuck, origin=black_hole.node_id)
            wait_for(recorder.results, timeout=30, what="the black hole's task to finish")
            wait_for(lambda: worker.outbox.stats()["results"] == 0, timeout=10,
                     what="the black hole's delivery to start")
            started = time.monotonic()
            job = submitter.jobs.submit(echo_tasks([f"mine {i}".encode() for i in range(4)], submitter.node_id),
                                        to=worker.node_id)
            wait_for(lambda: submitter.jobs.job_status(job)["status"] == "finished", timeout=30, what="the job")
            took = time.monotonic() - started
            release.set()
    assert took < 5.0, f"the submitter's results waited {took:.1f}s behind an unanswering submitter"


def test_a_node_holds_at_most_its_configured_bytes_for_an_unreachable_submitter(tmp_path: Path) -> None:
    cap = 256 << 10
    recorder = Recorder()
    node = build_node(make_home(tmp_path, "holder", {"privacy": {"outbox_bytes_per_submitter": cap}}),
                      load_plugins((recorder, "recorder")))
    unreachable = "ee" * 32
    with running(node, drain_s=1.0):
        for task in echo_tasks([bytes([i]) * (64 << 10) for i in range(20)], unreachable):
            node.admit(task, origin=unreachable)
        wait_for(lambda: len(recorder.results()) == 20, timeout=60, what="the tasks to run")
        outbox = wait_for(lambda: (s := node.status()["outbox"]).get("dropped_full", 0) + s["results"] == 20 and s,
                          timeout=10, what="the oldest results to be dropped (and no delivery in flight)")
    assert 0 < outbox["bytes"] <= cap and outbox["submitters"] == 1 and outbox["dropped_full"] > 0
