"""A credit its submitter gave up sending (the worker away over 5 minutes) still reaches the worker:
the worker asks for it when it reaches the submitter again, so both ledgers hold the same row.

Real stores on disk and real in-process nodes on 127.0.0.1 (see ``inprocess.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inprocess import build_node, load_plugins, make_home, running, wait_for
from nodes import echo_tasks

from gaia_core import codec
from gaia_core.jobs import earnings as earnings_mod
from gaia_core.jobs.earnings import AWAITING, Earnings
from gaia_core.jobs.messages import CreditQuery, Settlement
from gaia_core.jobs.unsettled import Unsettled
from gaia_core.node import Node
from gaia_core.rewards import Credit, Ledger
from gaia_core.store import Store

SUBMITTER, WORKER = "5a" * 32, "3b" * 32
OLD, RECENT, STRANGER = "c1" * 32, "c2" * 32, "c3" * 32


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """The worker's and the submitter's state.db."""
    worker, submitter = Store(tmp_path / "worker.db"), Store(tmp_path / "submitter.db")
    try:
        yield worker, submitter
    finally:
        worker.close()
        submitter.close()


def test_a_worker_asks_only_for_old_awaiting_deliveries_and_takes_only_what_it_asked(stores) -> None:
    worker_store, submitter_store = stores
    earnings, worker_ledger = Earnings(Ledger(worker_store), worker_store), Ledger(worker_store)
    long_ago = time.time() - earnings_mod.ASK_AFTER_S - 60
    worker_ledger.record(SUBMITTER, Credit(OLD, "unverified", 0.0, at=long_ago), role=AWAITING)
    worker_ledger.record(SUBMITTER, Credit(RECENT, "unverified", 0.0), role=AWAITING)  # still being sent
    worker_store.flush()
    submitter_ledger = Ledger(submitter_store)
    granted = Credit(OLD, "valid", 0.25, fuel=700, at=long_ago + 1)
    for amount in (granted, Credit(STRANGER, "valid", 9.0)):
        submitter_ledger.record(WORKER, amount, role="granted")
    submitter_store.flush()

    query = earnings.query(SUBMITTER)
    assert query == CreditQuery([OLD])
    assert earnings.query(SUBMITTER) is None  # asked a moment ago
    reply = Unsettled(ledger=submitter_ledger).answer(WORKER, codec.encode(query))
    assert codec.decode(reply, Settlement).credits == (submitter_ledger.granted(WORKER, OLD),)
    # A submitter's answer naming a task that was not asked is ignored.
    lying = codec.encode(Settlement([submitter_ledger.granted(WORKER, OLD), Credit(STRANGER, "valid", 9.0)]))
    assert earnings.answered(SUBMITTER, query, lying) == 1
    rows = worker_store.execute("SELECT task_id, role, credit, fuel, at FROM ledger ORDER BY task_id")
    assert rows == [(OLD, "earned", 0.25, 700, granted.at), (RECENT, AWAITING, 0.0, 0, rows[1][4])]
    # Another node's ledger rows are not answered to this one.
    assert codec.decode(Unsettled(ledger=submitter_ledger).answer(SUBMITTER, codec.encode(query)),
                        Settlement).credits == ()


def test_a_credit_the_submitter_gave_up_sending_reaches_the_worker_at_its_next_delivery(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every result is spot-checked, so each credit goes in a ``task.settled`` message after the ack.
    None gets through (as when the worker is away until the submitter gives up); the worker's next
    delivery to that submitter asks for them."""
    monkeypatch.setattr(earnings_mod, "ASK_EVERY_S", 0.0)
    worker = build_node(make_home(tmp_path, "worker"), load_plugins())
    with running(worker, drain_s=2.0):
        home = make_home(tmp_path, "submitter", {"network": {"bootstrap": [worker.address]},
                                                 "verification": {"spot_check": 1.0}})
        submitter = build_node(home, load_plugins())
        dropped: list[Any] = []
        submitter.jobs._send_settlement = lambda *args, **kwargs: dropped.append(args)  # type: ignore[method-assign]
        with running(submitter, drain_s=2.0):
            wait_for(lambda: worker.node_id in submitter.peer_records, timeout=30, what="the peers to meet")
            first = submitter.jobs.submit(echo_tasks([f"given up {i}".encode() for i in range(3)],
                                                     submitter.node_id), to=worker.node_id)
            assert submitter.jobs.wait_job(first, timeout=60)["tasks"] == {"done": 3}
            wait_for(lambda: len(granted(submitter, worker)) == 3, timeout=20, what="the three credits granted")
            owed = granted(submitter, worker)
            assert not owed.items() <= earned(worker, submitter).items()  # none told yet
            # the submitter has given up (300 s in production): from now on a delivery asks for them (not
            # before: a later delivery of the first job could already ask, and the check above would race)
            monkeypatch.setattr(earnings_mod, "ASK_AFTER_S", 0.0)
            second = submitter.jobs.submit(echo_tasks([b"next delivery"], submitter.node_id), to=worker.node_id)
            assert submitter.jobs.wait_job(second, timeout=60)["tasks"] == {"done": 1}
            wait_for(lambda: owed.items() <= earned(worker, submitter).items(), timeout=20,
                     what="the worker to take the credits its submitter gave up sending")


def granted(submitter: Node, worker: Node) -> dict[str, tuple[float, int, float]]:
    return {t: (c, f, a) for t, c, f, a in submitter.store.execute(
        "SELECT task_id, credit, fuel, at FROM ledger WHERE role = 'granted' AND node_id = ?", (worker.node_id,))}


def earned(worker: Node, submitter: Node) -> dict[str, tuple[float, int, float]]:
    return {t: (c, f, a) for t, c, f, a in worker.store.execute(
        "SELECT task_id, credit, fuel, at FROM ledger WHERE role = 'earned' AND node_id = ?", (submitter.node_id,))}


def test_a_worker_restarted_asks_a_submitter_it_sees_up_for_the_credits_it_missed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker is stopped before any settlement reaches it; once started again, the submitter comes
    up in its peer table and it asks, with no delivery to make."""
    monkeypatch.setattr(earnings_mod, "ASK_AFTER_S", 3600.0)  # the first run never asks: nothing is old enough
    worker_home = make_home(tmp_path, "worker")
    worker = build_node(worker_home, load_plugins())
    with running(worker, drain_s=2.0):
        home = make_home(tmp_path, "submitter", {"network": {"bootstrap": [worker.address]},
                                                 "verification": {"spot_check": 1.0}})
        submitter = build_node(home, load_plugins())
        submitter.jobs._send_settlement = lambda *args, **kwargs: None  # type: ignore[method-assign]
        submitter.start()
        try:
            wait_for(lambda: worker.node_id in submitter.peer_records, timeout=30, what="the peers to meet")
            job = submitter.jobs.submit(echo_tasks([b"missed 1", b"missed 2"], submitter.node_id),
                                        to=worker.node_id)
            assert submitter.jobs.wait_job(job, timeout=60)["tasks"] == {"done": 2}
            wait_for(lambda: len(granted(submitter, worker)) == 2, timeout=20, what="the two credits granted")
        except BaseException:
            submitter.stop(drain_s=1.0)
            raise
    try:
        owed = granted(submitter, worker)
        monkeypatch.setattr(earnings_mod, "ASK_AFTER_S", 0.0)  # as if the worker was away past the give-up time
        restarted = build_node(worker_home, load_plugins())  # same home, same address: the submitter redials it
        with running(restarted, drain_s=2.0):
            wait_for(lambda: owed.items() <= earned(restarted, submitter).items(), timeout=30,
                     what="the restarted worker to ask for the credits it missed")
    finally:
        submitter.stop(drain_s=1.0)
