"""Credit from verifiable quantities only (gaia_core.rewards): claims never pay above the task's budget."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gaia_core import codec
from gaia_core.errors import CodecError
from gaia_core.model import Limits, Task, TaskResult, Verdict
from gaia_core.rewards import MEMORY_WEIGHT, Credit, Ledger, credit
from gaia_core.store import Store

WORKER = "b" * 64
TASK = Task(module_id="a" * 64, input=b"hello", entry="echo", limits=Limits(fuel=2_000_000, timeout_s=5.0,
                                                                             memory_bytes=64 << 20))
VALID = Verdict("valid", "proof verified", TASK.id, "zk-mock")
#: The most any claim can earn for TASK: its fuel budget, and its memory limit held for its whole timeout,
#: with the largest uptime (+10 %) and energy (+25 %) factors.
BUDGET = (TASK.limits.fuel / 1e9 + MEMORY_WEIGHT * (TASK.limits.memory_bytes / 2**30) * TASK.limits.timeout_s) \
    * 1.25 * 1.1


def claim(**fields: object) -> TaskResult:
    return TaskResult(task_id=TASK.id, status="ok", node_id=WORKER, output=b"hello", **fields)


def test_an_honest_claim_is_credited_as_before() -> None:
    amount = credit(TASK, claim(fuel_used=1_000, wall_s=0.01, peak_memory_bytes=1 << 20), VALID, observed_s=0.02)
    assert amount.fuel == 1_000 and amount.seconds == pytest.approx(0.01)
    assert amount.total == pytest.approx(1e-6 + MEMORY_WEIGHT * (1 / 1024) * 0.01)


def test_inflated_fuel_is_capped_by_the_tasks_fuel_budget() -> None:
    amount = credit(TASK, claim(fuel_used=10**15), VALID, observed_s=0.01)
    assert amount.fuel == TASK.limits.fuel
    assert amount.total <= BUDGET and amount.total == pytest.approx(TASK.limits.fuel / 1e9)


def test_inflated_memory_and_time_are_capped_by_limits_and_by_what_the_submitter_saw() -> None:
    huge = claim(fuel_used=1_000, peak_memory_bytes=(1 << 63) - 1, wall_s=1e12, cpu_s=1e12)
    seen = credit(TASK, huge, VALID, observed_s=0.5)
    assert seen.seconds == 0.5 and seen.cpu_s == 0.5 and seen.memory_gb_s == pytest.approx(0.5 / 16)
    unseen = credit(TASK, huge, VALID)  # no observation: the task's timeout bounds the time
    assert unseen.seconds == TASK.limits.timeout_s and unseen.total <= BUDGET


def test_measured_energy_moves_credit_by_at_most_its_bounds() -> None:
    cheap = credit(TASK, claim(fuel_used=10**15, energy_j=1e-300, energy_source="measured"), VALID, uptime_s=1e9)
    assert cheap.efficiency == 1.25 and cheap.uptime == pytest.approx(1.1) and cheap.total <= BUDGET


def test_reproduced_fuel_replaces_the_claim_and_only_valid_verdicts_pay() -> None:
    assert credit(TASK, claim(fuel_used=10**9), VALID, fuel=1_234).fuel == 1_234
    assert credit(TASK, claim(fuel_used=1_000), Verdict("invalid", "x", TASK.id)).total == 0.0
    assert credit(TASK, claim(fuel_used=1_000), Verdict("unverified", "x", TASK.id)).total == 0.0


def test_a_credit_from_a_peer_is_validated_at_decode() -> None:
    good = credit(TASK, claim(fuel_used=1_000), VALID)
    assert codec.decode(codec.encode(good), Credit) == good
    data = codec.converter.unstructure(good)
    for field, bad in (("total", math.nan), ("total", -1.0), ("fuel", -1), ("verdict", "paid")):
        with pytest.raises(CodecError):
            codec.structure({**data, field: bad}, Credit)


def test_the_ledger_summary_shows_granted_and_earned_credit_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    ledger = Ledger(store)
    ledger.record(WORKER, credit(TASK, claim(fuel_used=1_000), VALID), role="granted")
    ledger.record(WORKER, credit(TASK, claim(fuel_used=1_000), VALID), role="earned")
    ledger.record(WORKER, Credit(TASK.id, "unverified", 0.0), role="awaiting")
    assert sorted(row["role"] for row in ledger.summary()) == ["earned", "granted"]
    store.close()
