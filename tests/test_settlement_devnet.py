"""Settlement across real node processes: every worker learns its credit, also when it is decided after the ack
(the other replica completed the quorum, or a spot-check ran later), and the submitter recorded it first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from nodes import echo_tasks, ledger_rows, node_id, run_job, running_devnet, wait_until

from gaia_core.config import Home

pytest.importorskip("gaia_runner_wasm.workloads")


def ledger_file(home: Home, role: str) -> dict[tuple[str, str], float]:
    """(node id, task id) -> credit, read straight from the node's state.db (what is durable, nothing in memory)."""
    with sqlite3.connect(f"file:{home.state_db}?mode=ro", uri=True) as db:
        return {(n, t): c for n, t, c in db.execute("SELECT node_id, task_id, credit FROM ledger WHERE role = ?",
                                                     (role,))}


@pytest.mark.parametrize(("redundancy", "spot_check"), [(2, 0.0), (1, 1.0)], ids=["replicas", "spot-checked"])
def test_every_worker_records_the_credit_the_submitter_granted_when_it_is_decided_after_the_ack(
        tmp_path: Path, redundancy: int, spot_check: float) -> None:
    with running_devnet(tmp_path, 3, extra={"verification": {"spot_check": spot_check}}) as homes:
        submitter = node_id(homes[0])
        payloads = [f"late credit {i}".encode() for i in range(12)]
        run_job(homes[0], echo_tasks(payloads, submitter), redundancy=redundancy)
        granted = ledger_file(homes[0], "granted")
        workers = [h for h in homes[1:] if any(n == node_id(h) for n, _ in granted)]
        assert workers, "no task ran on another node"
        for home in workers:
            mine = {t: c for (n, t), c in granted.items() if n == node_id(home)}
            wait_until(lambda home=home, mine=mine: len(ledger_file(home, "earned")) == len(mine), timeout=20,
                       what="the worker to hear of every credit")
            earned = {t: c for (n, t), c in ledger_file(home, "earned").items() if n == submitter}
            assert earned == pytest.approx(mine)
            assert all(c > 0 for c in earned.values())
        summary = ledger_rows(homes[0], "granted")
        assert sum(row["tasks"] for row in summary.values()) == redundancy * len(payloads)
