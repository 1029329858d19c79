"""Stopping a node waits for its in-flight result deliveries (within the drain deadline): the result
gets through, and nothing of the node logs after ``node stopped``.

Real in-process nodes on 127.0.0.1 (see ``inprocess.py``).
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


class Lines(logging.Handler):
    """Every record of the ``gaia`` loggers, with the thread that logged it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler, logger = Lines(), logging.getLogger("gaia")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_stop_waits_for_a_delivery_in_flight_and_nothing_logs_after_it(tmp_path: Path, lines: Lines) -> None:
    worker = build_node(make_home(tmp_path, "worker"), load_plugins())
    with running(worker, drain_s=2.0):
        submitter = build_node(make_home(tmp_path, "submitter", {"network": {"bootstrap": [worker.address]}}),
                               load_plugins())
        arrived, release = threading.Event(), threading.Event()
        take = submitter.jobs.on_results

        def slow_results(sender: str, items: list[Any], seals: Any = ()) -> Any:  # the submitter answers late
            if sender == worker.node_id:
                arrived.set()
                release.wait(10.0)
            return take(sender, items, seals)

        submitter.jobs.on_results = slow_results  # type: ignore[method-assign]
        with running(submitter, drain_s=2.0):
            wait_for(lambda: worker.node_id in submitter.peer_records, timeout=30, what="the peers to meet")
            job = submitter.jobs.submit(echo_tasks([b"in flight at stop"], submitter.node_id), to=worker.node_id)
            assert arrived.wait(30), "the result was not delivered"
            threading.Timer(0.5, release.set).start()  # answered well within the worker's drain time
            worker.stop(drain_s=5.0)
            stopped = next(i for i, r in enumerate(lines.records) if r.getMessage() == "node stopped")
            assert submitter.jobs.wait_job(job, timeout=10)["tasks"] == {"done": 1}
            # The worker read the acknowledgement (before, the stopped transport failed the delivery and
            # the credit in the ack was never recorded): both ledgers hold the task's credit.
            failed = [r.getMessage() for r in lines.records if r.getMessage().startswith("result delivery failed")]
            assert failed == []
            with sqlite3.connect(f"file:{worker.context.home.state_db}?mode=ro", uri=True) as db:
                assert db.execute("SELECT role FROM ledger WHERE node_id = ?", (submitter.node_id,)).fetchall() \
                    == [("earned",)]
            late = [r for r in lines.records[stopped + 1:] if r.threadName.startswith("gaia-deliver")]
            assert late == []
