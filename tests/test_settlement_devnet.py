"""Settlement across real node processes: every replica's worker learns its credit, recorded first by the submitter."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gaia_core.config import Home

from nodes import echo_tasks, ledger_rows, node_id, run_job, running_devnet, wait_until

pytest.importorskip("gaia_runner_wasm.workloads")


def ledger_file(home: Home, role: str) -> dict[tuple[str, str], float]:
    """(node id, task id) -> credit, read straight from the node's state.db (what is durable, nothing in memory)."""
    with sqlite3.connect(f"file:{home.state_db}?mode=ro", uri=True) as db:
        return {(n, t): c for n, t, c in db.execute("SELECT node_id, task_id, credit FROM ledger WHERE role = ?",
                                                     (role,))}


def test_with_redundancy_two_every_replicas_worker_records_the_credit_the_submitter_granted(tmp_path: Path) -> None:
    with running_devnet(tmp_path, 3) as homes:
        submitter = node_id(homes[0])
        payloads = [f"replica credit {i}".encode() for i in range(12)]
        run_job(homes[0], echo_tasks(payloads, submitter), redundancy=2)
        granted = ledger_file(homes[0], "granted")
        workers = [h for h in homes[1:] if any(n == node_id(h) for n, _ in granted)]
        assert workers, "no task ran on another node"
        for home in workers:
            mine = {t: c for (n, t), c in granted.items() if n == node_id(home)}
            wait_until(lambda: len(ledger_file(home, "earned")) == len(mine), timeout=20,
                       what="the worker to hear of every credit")
            earned = {t: c for (n, t), c in ledger_file(home, "earned").items() if n == submitter}
            assert earned == pytest.approx(mine)
            assert all(c > 0 for c in earned.values())
        summary = ledger_rows(homes[0], "granted")
        assert sum(row["tasks"] for row in summary.values()) == 2 * len(payloads)
