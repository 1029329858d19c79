"""Durability windows of settlement (issue #13 review): credits owed to workers survive a stop, a stop
waits for the spot-check under way, and a failed batch of writes leaves nothing behind.

Real stores on disk and real in-process nodes on 127.0.0.1 (see ``inprocess.py``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inprocess import build_node, load_plugins, make_home, running, wait_for
from nodes import echo_tasks

from gaia_core.config import Home
from gaia_core.jobs import unsettled
from gaia_core.jobs.unsettled import Unsettled
from gaia_core.model import Task, TaskResult, Verdict
from gaia_core.node import Node
from gaia_core.rewards import Credit, Ledger
from gaia_core.store import Store
from gaia_core.verification import Tolerance

WORKER, TASK, OTHER_TASK = "ab" * 32, "cd" * 32, "ef" * 32


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "state.db")
    try:
        yield opened
    finally:
        opened.close()


def read(path: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` read from the database file itself, as a kill -9 now would leave it."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


# ------------------------------------------------------------------ Store.batch() and atomic()

def test_a_batch_whose_block_raises_writes_nothing_it_deferred(store: Store) -> None:
    store.defer("INSERT INTO stats VALUES ('before', 1)")
    with pytest.raises(ValueError, match="boom"):
        with store.batch():
            store.defer("INSERT INTO stats VALUES ('inside', 1)")
            store.bump({"bumped.inside": 1})
            raise ValueError("boom")
    store.flush()
    assert store.stats() == {"before": 1}


def test_an_atomic_block_writes_everything_at_the_next_flush_or_nothing(store: Store) -> None:
    with store.atomic():
        store.defer("INSERT INTO stats VALUES ('kept', 1)")
        store.bump({"kept.bump": 2})
    with pytest.raises(KeyError):
        with store.atomic():
            store.defer("INSERT INTO stats VALUES ('dropped', 1)")
            raise KeyError("dropped")
    assert read(store.path, "SELECT key FROM stats") == []  # written behind, at the next flush
    store.flush()
    assert store.stats() == {"kept": 1, "kept.bump": 2}


def test_a_read_inside_a_batch_writes_only_what_was_deferred_before_it(store: Store) -> None:
    store.defer("INSERT INTO stats VALUES ('before', 1)")
    with pytest.raises(RuntimeError):
        with store.batch():
            store.defer("INSERT INTO stats VALUES ('inside', 1)")
            assert store.execute("SELECT key FROM stats") == [("before",)]
            raise RuntimeError("after a read")
    assert store.stats() == {"before": 1}


# ------------------------------------------------------------------ credits owed, on disk

def test_a_credit_owed_is_written_with_its_granted_row_and_sent_again_after_a_restart(tmp_path: Path) -> None:
    path, amount = tmp_path / "state.db", Credit(TASK, "valid", 0.5, fuel=500)
    store = Store(path)
    try:
        ledger, owed = Ledger(store), Unsettled(ledger=Ledger(store))
        with store.atomic():
            ledger.record(WORKER, amount, role="granted")
            owed.owe({WORKER: amount})
        with pytest.raises(ValueError):  # a decision that raised: neither its grant nor its debt is written
            with store.atomic():
                ledger.record(WORKER, Credit(OTHER_TASK, "valid", 1.0), role="granted")
                owed.owe({WORKER: Credit(OTHER_TASK, "valid", 1.0)})
                raise ValueError("the decision failed")
        store.flush()
        assert read(path, "SELECT node_id, task_id, role FROM ledger") == [(WORKER, TASK, "granted")]
        assert read(path, "SELECT node_id, task_id FROM unsettled") == [(WORKER, TASK)]
    finally:
        store.close()  # stopped before the settlement was sent
    store = Store(path)
    try:
        restarted = Unsettled(ledger=Ledger(store))
        assert restarted.load() == 1
        assert restarted.due() == [(WORKER, (amount,))]  # due at once, the credit the ledger holds
        restarted.sent(WORKER, (amount,))
        store.flush()
        assert read(path, "SELECT * FROM unsettled") == []
        assert Unsettled(ledger=Ledger(store)).load() == 0
    finally:
        store.close()


def test_credits_owed_past_their_give_up_time_are_not_loaded(tmp_path: Path) -> None:
    now = [1000.0]
    store = Store(tmp_path / "state.db")
    try:
        ledger = Ledger(store)
        for task_id in (TASK, OTHER_TASK):
            ledger.record(WORKER, Credit(task_id, "valid", 1.0), role="granted")
        Unsettled(lambda: now[0], ledger=ledger).owe({WORKER: Credit(TASK, "valid", 1.0)})
        now[0] += unsettled.KEEP_S / 2
        Unsettled(lambda: now[0], ledger=ledger).owe({WORKER: Credit(OTHER_TASK, "valid", 1.0)})
        now[0] += unsettled.KEEP_S * 0.75  # past the first one's give-up time only
        later = Unsettled(lambda: now[0], ledger=ledger)
        assert later.load() == 1
        assert [tuple(c.task_id for c in credits) for _, credits in later.due()] == [(OTHER_TASK,)]
        assert store.execute("SELECT task_id FROM unsettled") == [(OTHER_TASK,)]  # the expired row is deleted
        now[0] += unsettled.KEEP_S / 2
        later.keep(WORKER, (Credit(OTHER_TASK, "valid", 1.0),))  # that try failed past its give-up time
        assert later.due() == []
        assert store.execute("SELECT task_id FROM unsettled") == []
    finally:
        store.close()


# ------------------------------------------------------------------ in-process nodes

def spot_checking_submitter(tmp_path: Path, worker: Node) -> Home:
    return make_home(tmp_path, "submitter", {"network": {"bootstrap": [worker.address]},
                                             "verification": {"spot_check": 1.0}})


def earned(worker: Node, submitter: str) -> dict[str, float]:
    return dict(worker.store.execute("SELECT task_id, credit FROM ledger WHERE role = 'earned' AND node_id = ?",
                                     (submitter,)))


def test_a_settlement_not_sent_before_the_submitter_stopped_reaches_the_worker_after_its_restart(
        tmp_path: Path) -> None:
    """Every result is spot-checked, so each credit goes in a ``task.settled`` message after the ack.
    The first submitter never gets one out (as if it stopped, or was killed, right after writing the
    credits); the node started again on its home sends them."""
    worker = build_node(make_home(tmp_path, "worker"), load_plugins())
    with running(worker, drain_s=2.0):
        home = spot_checking_submitter(tmp_path, worker)
        first = build_node(home, load_plugins())
        dropped: list[tuple[str, Any]] = []
        first.jobs._send_settlement = lambda peer, credits, tries=0: dropped.append((peer, credits))  # type: ignore[method-assign]
        with running(first, drain_s=2.0):
            wait_for(lambda: worker.node_id in first.peer_records, timeout=30, what="the peers to meet")
            job = first.jobs.submit(echo_tasks([f"owed {i}".encode() for i in range(3)], first.node_id),
                                    to=worker.node_id)
            assert first.jobs.wait_job(job, timeout=60)["tasks"] == {"done": 3}
            wait_for(lambda: len(dropped) == 3, timeout=20, what="the three settlements")
        granted = dict(read(home.state_db, "SELECT task_id, credit FROM ledger WHERE role = 'granted'"))
        assert len(granted) == 3 and earned(worker, first.node_id) == {}
        assert len(read(home.state_db, "SELECT * FROM unsettled")) == 3

        second = build_node(home, load_plugins())
        with running(second, drain_s=2.0):
            wait_for(lambda: earned(worker, second.node_id) == granted, timeout=30,
                     what="the worker to record the credits owed")
            wait_for(lambda: not second.store.execute("SELECT * FROM unsettled"), timeout=10,
                     what="the submitter to forget the credits taken")


class GatedCheck:
    """The submitter's spot-check re-execution, held until the test opens the gate (test-only)."""

    def __init__(self, node: Node) -> None:
        self.started, self.gate = threading.Event(), threading.Event()
        self._reexecute = node.jobs.settlement.reexecute
        node.jobs.settlement.reexecute = self  # type: ignore[method-assign]

    def __call__(self, task: Task, result: TaskResult, tolerance: Tolerance | None = None) -> Verdict:
        self.started.set()
        self.gate.wait(10.0)
        return self._reexecute(task, result, tolerance)


class Errors(logging.Handler):
    """Error records of the ``gaia`` loggers."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Iterator[Errors]:
    handler, logger = Errors(), logging.getLogger("gaia")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def one_checked_task(tmp_path: Path, worker: Node) -> tuple[Node, GatedCheck]:
    submitter = build_node(spot_checking_submitter(tmp_path, worker), load_plugins())
    return submitter, GatedCheck(submitter)


def start_check(submitter: Node, worker: Node, check: GatedCheck) -> None:
    submitter.start()
    wait_for(lambda: worker.node_id in submitter.peer_records, timeout=30, what="the peers to meet")
    submitter.jobs.submit(echo_tasks([b"checked"], submitter.node_id), to=worker.node_id)
    assert check.started.wait(30), "the spot-check did not start"


def test_stop_waits_for_the_spot_check_under_way_and_settles_its_verdict(tmp_path: Path, errors: Errors) -> None:
    worker = build_node(make_home(tmp_path, "worker"), load_plugins())
    with running(worker, drain_s=2.0):
        submitter, check = one_checked_task(tmp_path, worker)
        start_check(submitter, worker, check)
        stopping = threading.Thread(target=submitter.stop, kwargs={"drain_s": 10.0})
        stopping.start()
        assert not submitter.wait(2.0)  # the stop waits for the check ...
        check.gate.set()
        stopping.join(15)
        assert submitter.wait(0)  # ... which ended well within the drain time
    db = submitter.context.home.state_db
    assert read(db, "SELECT state FROM tasks") == [("done",)]
    assert read(db, "SELECT role, verdict FROM ledger") == [("granted", "valid")]
    assert errors.records == []


def test_a_spot_check_still_running_at_the_drain_deadline_leaves_its_task_pending(
        tmp_path: Path, errors: Errors) -> None:
    worker = build_node(make_home(tmp_path, "worker"), load_plugins())
    with running(worker, drain_s=2.0):
        submitter, check = one_checked_task(tmp_path, worker)
        start_check(submitter, worker, check)
        submitter.stop(drain_s=0.3)
        check.gate.set()  # the check ends after the store closed
        wait_for(lambda: not submitter.jobs._checking, timeout=15, what="the spot-check to end")
    db = submitter.context.home.state_db
    assert read(db, "SELECT state FROM tasks") == [("pending",)]  # run again at the next start
    assert read(db, "SELECT * FROM ledger") == []
    assert errors.records == []


def test_a_credit_told_in_an_ack_the_worker_lost_is_confirmed_by_a_settlement(tmp_path: Path) -> None:
    """A worker killed as it reads the acknowledgement of its delivery never records the credit in it;
    the submitter also owes every acked credit durably and confirms it in a ``task.settled`` message."""
    worker = build_node(make_home(tmp_path, "worker"), load_plugins())
    worker.jobs.record_earned = lambda *args, **kwargs: None  # type: ignore[method-assign]
    with running(worker, drain_s=2.0):
        home = make_home(tmp_path, "submitter", {"network": {"bootstrap": [worker.address]}})
        submitter = build_node(home, load_plugins())
        with running(submitter, drain_s=2.0):
            wait_for(lambda: worker.node_id in submitter.peer_records, timeout=30, what="the peers to meet")
            job = submitter.jobs.submit(echo_tasks([f"acked {i}".encode() for i in range(3)], submitter.node_id),
                                        to=worker.node_id)
            assert submitter.jobs.wait_job(job, timeout=60)["tasks"] == {"done": 3}
            granted = dict(submitter.store.execute(
                "SELECT task_id, credit FROM ledger WHERE role = 'granted' AND node_id = ?", (worker.node_id,)))
            assert len(granted) == 3
            wait_for(lambda: earned(worker, submitter.node_id) == granted, timeout=20,
                     what="the confirming settlements")
            wait_for(lambda: not submitter.store.execute("SELECT * FROM unsettled"), timeout=10,
                     what="the submitter to forget the credits taken")
