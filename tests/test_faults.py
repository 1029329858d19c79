"""Faults on a real devnet: a worker killed mid-job, a worker forging proofs, a worker with a tiny queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from nodes import (
    call,
    echo_tasks,
    kill,
    ledger_rows,
    node_id,
    results,
    running_devnet,
    slow_tasks,
    submit,
    wait_job,
    wait_until,
)

from gaia_core.config import Home

pytest.importorskip("gaia_runner_wasm.workloads")


def _assert_all_done(home: Home, job: str, count: int) -> list[dict]:
    status = wait_job(home, job, timeout=120)
    rows = results(home, job)
    assert status["tasks"] == {"done": count}, [(r["idx"], r["state"], r["reason"]) for r in rows]
    assert all(r["result"] is not None and r["result"].ok for r in rows)
    return rows


def test_worker_killed_mid_job_loses_no_task(tmp_path: Path) -> None:
    with running_devnet(tmp_path / "devnet", 3) as homes:
        tasks = slow_tasks(node_id(homes[0]), 12)
        job = submit(homes[0], tasks)
        wait_until(lambda: call(homes[2], "status")["running"] >= 1, timeout=60, what="node2 to run a task")
        kill(homes[2])

        rows = _assert_all_done(homes[0], job, len(tasks))
        assert [r["id"] for r in rows] == [t.id for t in tasks]
        assert sum(r["attempts"] for r in rows) > len(tasks)  # what node2 held was sent again


def test_forged_proofs_are_rejected_rerun_elsewhere_and_earn_nothing(tmp_path: Path) -> None:
    forger = {2: {"zk_mock": {"invalid_rate": 1.0, "seed": 1}}}
    with running_devnet(tmp_path / "devnet", 3, overrides=forger) as homes:
        cheat = node_id(homes[2])
        payloads = [f"honest work {i}".encode() for i in range(30)]
        job = submit(homes[0], echo_tasks(payloads, node_id(homes[0])))

        rows = _assert_all_done(homes[0], job, len(payloads))
        assert [r["result"].output for r in rows] == payloads
        assert all(r["result"].node_id != cheat for r in rows)
        assert call(homes[0], "status")["verification"].get("verdicts.invalid", 0) >= 1
        granted = ledger_rows(homes[0], "granted")
        assert granted[cheat]["tasks"] >= 1 and granted[cheat]["verified"] == 0 and granted[cheat]["credit"] == 0
        honest = [granted.get(node_id(h), {"verified": 0}) for h in homes[:2]]
        assert sum(row["verified"] for row in honest) == len(payloads)
        assert ledger_rows(homes[2], "earned").get(node_id(homes[0]), {"credit": 0})["credit"] == 0


def test_full_queue_on_one_peer_sends_work_to_the_others(tmp_path: Path) -> None:
    tiny = {1: {"queue": {"capacity": 1}}}
    with running_devnet(tmp_path / "devnet", 3, overrides=tiny) as homes:
        tasks = slow_tasks(node_id(homes[0]), 12, epochs=200)
        job = submit(homes[0], tasks)

        rows = _assert_all_done(homes[0], job, len(tasks))
        small = call(homes[1], "status")
        assert small["queue"]["capacity"] == 1
        assert small["queue"]["rejected"].get("queue_full", 0) >= 1
        ran = [r["result"].node_id for r in rows]
        assert ran.count(node_id(homes[1])) < len(tasks) // 3
