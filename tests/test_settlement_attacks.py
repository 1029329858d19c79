"""A worker that inflates its claims, against a real submitter (two in-process nodes on 127.0.0.1).

The liar runs every task honestly with the WASM runner and claims 10^15 fuel, 1 TiB of memory and a
day of wall and CPU time, under a valid proof of that claim (issue #12: paid 1e6 and 2e17 before).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from inprocess import build_node, load_plugins, make_home, running, wait_for
from nodes import echo_tasks

from gaia_core import hookimpl
from gaia_core.model import Task, TaskResult
from gaia_core.node import Node
from gaia_core.roles import NodeContext, RunnerSpec

pytest.importorskip("gaia_runner_wasm.workloads")
from gaia_runner_wasm import WasmRunner  # noqa: E402

LIMITS = {"fuel": 50_000_000, "memory_bytes": 64 << 20, "timeout_s": 5.0}
#: The most one task under LIMITS can earn: its fuel budget and memory limit for its timeout, every factor at its top.
BOUND = (LIMITS["fuel"] / 1e9 + 0.05 * (LIMITS["memory_bytes"] / 2**30) * LIMITS["timeout_s"]) * 1.25 * 1.1


class LyingRunner:
    """Runs tasks honestly and claims far more than it used."""

    def __init__(self, context: NodeContext) -> None:
        self.inner = WasmRunner(context)

    def run(self, task: Task) -> TaskResult:
        return attrs.evolve(self.inner.run(task), fuel_used=10**15, peak_memory_bytes=1 << 40,
                            wall_s=86_400.0, cpu_s=86_400.0)

    def close(self) -> None:
        self.inner.close()


class LyingRunnerPlugin:
    @hookimpl
    def gaia_runners(self) -> Iterator[RunnerSpec]:
        yield RunnerSpec(name="lying-wasm", task_kinds=("wasm",), factory=LyingRunner)


def _granted(submitter: Node, worker: str) -> list[dict]:
    return list(submitter.store.rows("SELECT * FROM ledger WHERE role = 'granted' AND node_id = ?", (worker,)))


def _attack(tmp_path: Path, spot_check: float) -> tuple[dict, list[dict], list[dict], int]:
    liar = build_node(make_home(tmp_path, "liar"), load_plugins((LyingRunnerPlugin(), "lying-runner"),
                                                                without=("gaia-runner-wasm",)))
    with running(liar, drain_s=2.0):
        home = make_home(tmp_path, "submitter", {"network": {"bootstrap": [liar.address]},
                                                 "verification": {"spot_check": spot_check}})
        with running(build_node(home, load_plugins()), drain_s=2.0) as submitter:
            wait_for(lambda: liar.node_id in submitter.peer_records, timeout=30, what="the peers to meet")
            tasks = echo_tasks([f"worth almost nothing {i}".encode() for i in range(4)], submitter.node_id, **LIMITS)
            job = submitter.jobs.submit(tasks, to=liar.node_id)
            status = submitter.jobs.wait_job(job, timeout=60)
            return (status, submitter.jobs.job_results(job), _granted(submitter, liar.node_id),
                    submitter.jobs.spot.trust.streak(liar.node_id))


def test_inflated_claims_earn_at_most_the_tasks_budget(tmp_path: Path) -> None:
    status, rows, granted, _ = _attack(tmp_path, spot_check=0.0)
    assert status["tasks"] == {"done": 4}
    assert len(granted) == 4 and all(row["verdict"] == "valid" for row in granted)
    assert all(row["fuel"] == LIMITS["fuel"] and 0 < row["credit"] <= BOUND for row in granted), granted
    assert all(row["result"] is not None for row in rows)


def test_a_claim_the_spot_check_does_not_reproduce_is_invalid_earns_nothing_and_costs_trust(tmp_path: Path) -> None:
    status, rows, granted, streak = _attack(tmp_path, spot_check=1.0)
    assert status["tasks"] == {"failed": 4}  # pinned to the liar: nowhere else to run them
    assert all("claimed fuel 1000000000000000" in row["reason"] for row in rows), [r["reason"] for r in rows]
    assert len(granted) == 4 and all(row["verdict"] == "invalid" and row["credit"] == 0 for row in granted)
    assert streak == 0
