"""Rewards: credit for verified work only, computed from quantities the submitter can check.

A worker's result claims fuel, memory and time; a submitter credits none of it beyond what it
can check (docs/rewards.md gives the rule, the attack it defeats and the anchors)::

    fuel     = min(claimed fuel, the task's fuel budget)       (or the fuel re-execution reproduced)
    seconds  = min(claimed wall time, the task's timeout, the submitter's own dispatch→result time)
    memory   = min(claimed peak memory, the task's memory limit)
    compute  = fuel / 1e9                                      (gigafuel: the same on every node)
    memory'  = 0.05 * memory_GiB * seconds
    factor   = clamp(REFERENCE_J_PER_GFUEL / (energy_j / gigafuel), 0.8, 1.25)  when energy was *measured*
             = 1.0                                             when it was estimated or unknown
    uptime   = 1 + min(uptime_h, 24) / 240                     (up to +10 % for a day of continuous presence)
    credit   = (compute + memory') * factor * uptime           when the verdict is valid, else 0

A claimed fuel that a re-execution (spot-check or redundancy replica) contradicts is not
credited at all: it makes the verdict ``invalid`` (:mod:`gaia_core.verification`).
"""

from __future__ import annotations

import math
import time
from typing import Any

import attrs
from attrs import field, frozen, validators as v

from gaia_core.model import Task, TaskResult, Verdict, VerdictStatus
from gaia_core.store import Store

#: Joules per gigafuel of a reference machine (a ~15 W core at ~1.5 Gfuel/s).
REFERENCE_J_PER_GFUEL = 10.0
MEMORY_WEIGHT = 0.05


def _finite(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")


_amount = [_finite, v.ge(0.0)]


@frozen
class Credit:
    """One task's credit and the checked quantities it was computed from.

    It is a row of the ledger, and what a submitter tells the worker (so both ledgers agree).
    """

    task_id: str = field(validator=(v.instance_of(str), v.max_len(64)))
    verdict: VerdictStatus = field(converter=VerdictStatus)
    total: float = field(converter=float, validator=_amount)
    fuel: int = field(default=0, validator=(v.instance_of(int), v.ge(0), v.lt(1 << 63)))
    seconds: float = field(default=0.0, converter=float, validator=_amount)
    memory_gb_s: float = field(default=0.0, converter=float, validator=_amount)
    cpu_s: float = field(default=0.0, converter=float, validator=_amount)
    energy_j: float | None = field(default=None, converter=attrs.converters.optional(float), validator=_finite)
    energy_source: str = field(default="unknown", validator=v.in_({"measured", "estimated", "unknown"}))
    efficiency: float = field(default=1.0, converter=float, validator=_amount)
    uptime: float = field(default=1.0, converter=float, validator=_amount)
    at: float = field(factory=time.time, converter=float, validator=_amount)


def credit(task: Task, result: TaskResult, verdict: Verdict, *, fuel: int | None = None,
           observed_s: float | None = None, uptime_s: float = 0.0) -> Credit:
    """The credit ``result`` of ``task`` earns under ``verdict`` (zero unless valid).

    ``fuel`` is the fuel re-execution reproduced (default: the claim); ``observed_s`` the time
    the submitter itself saw between dispatch and result. Every quantity is capped by the
    task's own limits, so no claim earns more than the task's budget.
    """
    limits = task.limits
    fuel = min(result.fuel_used if fuel is None else fuel, limits.fuel)
    seconds = min(result.wall_s, limits.timeout_s, math.inf if observed_s is None else max(0.0, observed_s))
    memory_gb_s = (min(result.peak_memory_bytes, limits.memory_bytes) / 2**30) * seconds
    gfuel = fuel / 1e9
    efficiency = 1.0
    if result.energy_source == "measured" and result.energy_j and gfuel > 0:
        efficiency = min(1.25, max(0.8, REFERENCE_J_PER_GFUEL / (result.energy_j / gfuel)))
    uptime = 1.0 + min(max(uptime_s, 0.0) / 3600.0, 24.0) / 240.0
    total = (gfuel + MEMORY_WEIGHT * memory_gb_s) * efficiency * uptime if verdict.ok else 0.0
    return Credit(task.id, verdict.status, total, fuel, seconds, memory_gb_s,
                  min(result.cpu_s, seconds), result.energy_j, result.energy_source, efficiency, uptime)


#: The ledger by node and role (what ``gaia rewards`` shows), also read from state.db without a node.
SUMMARY_SQL = """SELECT node_id, role, COUNT(*) AS tasks, SUM(verdict = 'valid') AS verified,
       SUM(credit) AS credit, SUM(fuel) AS fuel, ROUND(SUM(cpu_s), 3) AS cpu_s, ROUND(SUM(energy_j), 3) AS energy_j,
       SUM(energy_source = 'measured') AS energy_measured_tasks
FROM ledger WHERE role IN ('granted', 'earned') GROUP BY node_id, role ORDER BY role, credit DESC"""


class Ledger:
    """The per-node reward ledger in ``state.db``.

    ``role`` is ``granted`` for credit this node (as submitter) granted to a
    worker, and ``earned`` for credit a submitter reported granting this node.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, node_id: str, amount: Credit, *, role: str) -> None:
        """Record one task's credit (idempotent per node, task and role; written behind)."""
        self.store.defer(
            "INSERT OR REPLACE INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (node_id, amount.task_id, role, amount.total, amount.fuel, amount.cpu_s, amount.memory_gb_s,
             amount.energy_j, amount.energy_source, amount.verdict, amount.at),
        )

    def granted(self, node_id: str, task_id: str) -> Credit | None:
        """The credit this node granted ``node_id`` for ``task_id`` (as the ledger holds it), or None."""
        rows = self.store.execute("SELECT verdict, credit, fuel, memory_gb_s, cpu_s, energy_j, energy_source, at "
                                  "FROM ledger WHERE node_id = ? AND task_id = ? AND role = 'granted'",
                                  (node_id, task_id))
        if not rows:
            return None
        verdict, total, fuel, memory_gb_s, cpu_s, energy_j, source, at = rows[0]
        return Credit(task_id, verdict, total, fuel, memory_gb_s=memory_gb_s, cpu_s=cpu_s, energy_j=energy_j,
                      energy_source=source, at=at)

    def summary(self) -> list[dict[str, Any]]:
        """Per node and role (granted, earned): tasks, verified tasks, credit, fuel, CPU, energy (and whether measured).

        Bookkeeping rows of other roles (a worker's ``awaiting`` deliveries) are left out.
        """
        return list(self.store.rows(SUMMARY_SQL))
