"""Settlement (gaia_core.jobs.settlement): real tasks run by the WASM runner, real zk-mock proofs, a real ledger.

A worker's inflated claims earn at most the task's budget-bound credit; a claim that a re-execution
(spot-check or redundancy replica) contradicts is invalid and costs the worker its trust streak.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from gaia_core.identity import Identity
from gaia_core.jobs.settlement import Settlement
from gaia_core.model import Limits, Task, TaskResult, Verdict
from gaia_core.rewards import Ledger
from gaia_core.roles import NodeContext
from gaia_core.store import Store
from gaia_core.verification import SpotCheck

workloads = pytest.importorskip("gaia_runner_wasm.workloads")
from gaia_runner_wasm import WasmRunner  # noqa: E402
from gaia_zk_mock import MockProver, Settings  # noqa: E402

SUBMITTER, HONEST, LIAR, THIRD = (Identity.generate() for _ in range(4))
LIMITS = Limits(fuel=50_000_000, timeout_s=5.0, memory_bytes=64 << 20)
TASK = Task.create(workloads.module_bytes("echo"), entry="echo", input=b"credit me", submitter=SUBMITTER.node_id,
                   limits=LIMITS)


@pytest.fixture
def runner(node_context: NodeContext) -> Iterator[WasmRunner]:
    runner = WasmRunner(node_context)
    yield runner
    runner.close()


@pytest.fixture
def settlement(tmp_path: Path, runner: WasmRunner) -> Iterator[Settlement]:
    store = Store(tmp_path / "state.db")
    verifier = MockProver(SUBMITTER, Settings(simulate_time=False))
    yield Settlement(node_id=SUBMITTER.node_id, verifier=lambda scheme: verifier, runners={"wasm": runner},
                     ledger=Ledger(store), store=store, spot=SpotCheck(rate=1.0), uptime=lambda peer: 0.0)
    store.close()


def worker_result(runner: WasmRunner, worker: Identity, **claims: object) -> tuple[TaskResult, object]:
    """What ``worker`` sends back: the real run, with ``claims`` changed, and its own valid proof of that claim."""
    result = attrs.evolve(runner.run(TASK), node_id=worker.node_id, **claims)
    return result, MockProver(worker, Settings(simulate_time=False)).prove(TASK, result)


def granted(settlement: Settlement) -> dict[str, tuple[float, str, int]]:
    return {r["node_id"]: (r["credit"], r["verdict"], r["fuel"])
            for r in settlement.store.rows("SELECT * FROM ledger WHERE role = 'granted'")}


def test_the_proof_of_an_inflated_claim_verifies_but_it_earns_at_most_the_budget(settlement: Settlement,
                                                                                  runner: WasmRunner) -> None:
    result, proof = worker_result(runner, LIAR, fuel_used=10**15, peak_memory_bytes=1 << 62, wall_s=1e9)
    verdict = settlement.verify(LIAR.node_id, TASK, result, proof)
    assert verdict.ok  # the prover only says the liar signed its claim
    outcome = settlement.decide(TASK, 1, {LIAR.node_id: result}, LIAR.node_id, verdict, {LIAR.node_id: 0.2})
    paid = outcome.credits[LIAR.node_id]
    assert outcome.state == "done" and paid.fuel == LIMITS.fuel and paid.seconds == 0.2
    assert paid.total <= (LIMITS.fuel / 1e9 + 0.05 * (64 / 1024) * 0.2) * 1.0001
    assert granted(settlement)[LIAR.node_id][0] == pytest.approx(paid.total)


def test_a_fuel_claim_a_spot_check_does_not_reproduce_is_invalid_and_resets_trust(settlement: Settlement,
                                                                                   runner: WasmRunner) -> None:
    for _ in range(3):
        settlement.spot.trust.record(LIAR.node_id, Verdict("valid"))
    honest, _ = worker_result(runner, HONEST)
    assert settlement.reexecute(TASK, honest).ok
    result, proof = worker_result(runner, LIAR, fuel_used=honest.fuel_used + 1)
    assert settlement.should_reexecute(LIAR.node_id, TASK)
    verdict = settlement.reexecute(TASK, result)
    assert verdict.status == "invalid" and "claimed fuel" in verdict.reason
    assert settlement.reject(LIAR.node_id, TASK, result, verdict).total == 0.0
    assert settlement.spot.trust.streak(LIAR.node_id) == 0
    assert granted(settlement)[LIAR.node_id][:2] == (0.0, "invalid")


def test_replicas_that_disagree_on_fuel_ask_another_and_the_outvoted_claim_is_invalid(settlement: Settlement,
                                                                                       runner: WasmRunner) -> None:
    honest, _ = worker_result(runner, HONEST)
    liar, _ = worker_result(runner, LIAR, fuel_used=10**15)
    results = {HONEST.node_id: honest, LIAR.node_id: liar}
    valid = Verdict("valid", "proof", TASK.id)
    assert settlement.decide(TASK, 2, {HONEST.node_id: honest}, HONEST.node_id, valid, {}).state == "waiting"
    assert settlement.decide(TASK, 2, results, LIAR.node_id, valid, {}).state == "more"
    third, _ = worker_result(runner, THIRD)
    outcome = settlement.decide(TASK, 2, {**results, THIRD.node_id: third}, THIRD.node_id, valid, {})
    assert outcome.state == "done" and outcome.winner.fuel_used == honest.fuel_used
    rows = granted(settlement)
    assert rows[LIAR.node_id][:2] == (0.0, "invalid") and settlement.spot.trust.streak(LIAR.node_id) == 0
    assert rows[HONEST.node_id][1:] == rows[THIRD.node_id][1:] == ("valid", honest.fuel_used)


def test_replicas_without_a_fuel_majority_after_twice_the_redundancy_earn_the_smallest_claim(
        settlement: Settlement, runner: WasmRunner) -> None:
    claims = {w.node_id: worker_result(runner, w, fuel_used=f)[0]
              for w, f in ((HONEST, 1_000), (LIAR, 10**12), (THIRD, 5_000), (SUBMITTER, 7_000))}
    outcome = settlement.decide(TASK, 2, claims, THIRD.node_id, Verdict("valid"), {})
    assert outcome.state == "done" and {c.fuel for c in outcome.credits.values()} == {1_000}
