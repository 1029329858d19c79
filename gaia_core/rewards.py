"""Rewards: credit for verified work only, recorded in the node's ledger.

The formula (docs/rewards.md gives the reasoning and the anchors)::

    compute  = fuel_used / 1e9                         (gigafuel: deterministic, the same on every node)
    memory   = 0.05 * peak_memory_GiB * wall_s         (memory held while the task ran)
    factor   = clamp(REFERENCE_J_PER_GFUEL / (energy_j / gigafuel), 0.8, 1.25)  when energy was *measured*
             = 1.0                                     when it was estimated or unknown
    uptime   = 1 + min(uptime_h, 24) / 240             (up to +10 % for a day of continuous presence)
    credit   = (compute + memory) * factor * uptime    when the verdict is valid, else 0
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from gaia_core.model import TaskResult, Verdict
from gaia_core.store import Store

#: Joules per gigafuel of a reference machine (a ~15 W core at ~1.5 Gfuel/s).
REFERENCE_J_PER_GFUEL = 10.0
MEMORY_WEIGHT = 0.05


@frozen
class Credit:
    """The credit of one task and the parts it was computed from."""

    compute: float
    memory: float
    efficiency: float
    uptime: float
    total: float


def credit(result: TaskResult, verdict: Verdict, *, uptime_s: float = 0.0) -> Credit:
    """The credit ``result`` earns under ``verdict`` (zero unless valid)."""
    gfuel = result.fuel_used / 1e9
    compute = gfuel
    memory = MEMORY_WEIGHT * (result.peak_memory_bytes / 2**30) * result.wall_s
    efficiency = 1.0
    if result.energy_source == "measured" and result.energy_j and gfuel > 0:
        efficiency = min(1.25, max(0.8, REFERENCE_J_PER_GFUEL / (result.energy_j / gfuel)))
    uptime = 1.0 + min(uptime_s / 3600.0, 24.0) / 240.0
    total = (compute + memory) * efficiency * uptime if verdict.ok else 0.0
    return Credit(compute, memory, efficiency, uptime, total)


class Ledger:
    """The per-node reward ledger in ``state.db``.

    ``role`` is ``granted`` for credit this node (as submitter) granted to a
    worker, and ``earned`` for credit a submitter reported granting this node.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, node_id: str, result: TaskResult, verdict: Verdict, amount: Credit, *, role: str) -> None:
        """Record one task's credit (idempotent per node, task and role; written behind)."""
        self.store.defer(
            "INSERT OR REPLACE INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (node_id, result.task_id, role, amount.total, result.fuel_used, result.cpu_s,
             (result.peak_memory_bytes / 2**30) * result.wall_s, result.energy_j, result.energy_source,
             verdict.status, result.finished_at),
        )

    def summary(self) -> list[dict[str, Any]]:
        """Per node and role: tasks, verified tasks, credit, fuel, CPU, energy (and whether measured)."""
        return list(self.store.rows(
            """SELECT node_id, role, COUNT(*) AS tasks, SUM(verdict = 'valid') AS verified,
                      SUM(credit) AS credit, SUM(fuel) AS fuel, ROUND(SUM(cpu_s), 3) AS cpu_s,
                      ROUND(SUM(energy_j), 3) AS energy_j,
                      SUM(energy_source = 'measured') AS energy_measured_tasks
               FROM ledger GROUP BY node_id, role ORDER BY role, credit DESC"""))
