"""Credit is durable at the submitter before the worker hears of it (two real in-process nodes on 127.0.0.1)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from inprocess import build_node, load_plugins, make_home, running, wait_for
from nodes import echo_tasks

from gaia_core.rewards import Credit, Ledger

pytest.importorskip("gaia_runner_wasm.workloads")


class CheckingLedger(Ledger):
    """The worker's ledger: each ``earned`` row it records is checked against the submitter's state.db on disk."""

    def __init__(self, ledger: Ledger, submitter_db: Path) -> None:
        super().__init__(ledger.store)
        self.submitter_db = submitter_db
        self.checked: list[tuple[str, bool]] = []
        self._lock = threading.Lock()

    def record(self, node_id: str, amount: Credit, *, role: str) -> None:
        if role == "earned":
            with sqlite3.connect(f"file:{self.submitter_db}?mode=ro", uri=True) as db:
                rows = db.execute("SELECT credit FROM ledger WHERE task_id = ? AND role = 'granted'",
                                  (amount.task_id,)).fetchall()
            with self._lock:
                self.checked.append((amount.task_id, rows == [(amount.total,)]))
        super().record(node_id, amount, role=role)


@pytest.mark.parametrize("spot_check", [0.0, 1.0], ids=["in-the-ack", "settled-later"])
def test_the_worker_records_only_credit_the_submitter_already_wrote(tmp_path: Path, spot_check: float) -> None:
    worker = build_node(make_home(tmp_path, "worker"), load_plugins())
    with running(worker, drain_s=2.0):
        home = make_home(tmp_path, "submitter", {"network": {"bootstrap": [worker.address]},
                                                 "verification": {"spot_check": spot_check}})
        submitter = build_node(home, load_plugins())
        worker.jobs.earnings.ledger = CheckingLedger(worker.ledger, home.state_db)
        with running(submitter, drain_s=2.0):
            wait_for(lambda: worker.node_id in submitter.peer_records, timeout=30, what="the peers to meet")
            tasks = echo_tasks([f"durable {i}".encode() for i in range(8)], submitter.node_id)
            job = submitter.jobs.submit(tasks, to=worker.node_id)
            assert submitter.jobs.wait_job(job, timeout=60)["tasks"] == {"done": 8}
            checking = worker.jobs.earnings.ledger
            wait_for(lambda: len(checking.checked) == 8, timeout=20, what="the worker to hear of each credit")
    assert all(ok for _, ok in checking.checked), checking.checked
