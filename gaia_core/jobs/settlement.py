"""Settlement: verify a worker's result and decide the credit it earns.

A result counts only when its proof verifies, and (by policy) a spot-check re-execution or a
redundancy quorum agrees. Credit is computed by :func:`gaia_core.rewards.credit` from quantities
this node can check: the task's limits, fuel reproduced by re-execution, and the time it saw
between dispatch and result. A fuel claim a re-execution contradicts is ``invalid`` and costs the
worker its trust streak.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attrs import define, field

from gaia_core import rewards
from gaia_core.errors import GaiaError
from gaia_core.hashing import content_id
from gaia_core.model import Proof, Task, TaskResult, TaskState, Verdict, VerdictStatus
from gaia_core.rewards import Credit, Ledger
from gaia_core.store import Store
from gaia_core.verification import SpotCheck, Tolerance, agreed_fuel, compare, quorum_of


@define
class Outcome:
    """What one verified result decided for its task.

    ``state`` is ``waiting`` (more replicas are out), ``more`` (send another replica),
    :attr:`TaskState.DONE` or :attr:`TaskState.FAILED` (with ``winner`` the deciding result, when
    there is one).
    ``credits`` holds every node credited by this decision, by node id.
    """

    state: TaskState | str
    verdict: Verdict
    winner: TaskResult | None = None
    reason: str = ""
    credits: dict[str, Credit] = field(factory=dict)


class Settlement:
    """Verification and credit for the results of this node's jobs."""

    def __init__(self, *, node_id: str, verifier: Callable[[str], Any], runners: Mapping[str, Any],
                 ledger: Ledger, store: Store, spot: SpotCheck, uptime: Callable[[str], float]) -> None:
        self.node_id = node_id
        self.verifier = verifier
        self.runners = runners
        self.ledger = ledger
        self.store = store
        self.spot = spot
        self.uptime = uptime

    def verify(self, sender: str, task: Task, result: TaskResult, proof: Proof | None) -> Verdict:
        """Check a result's proof: who ran it, that its output hashes to its id, and the prover's verdict."""
        if sender == self.node_id and proof is not None:
            return Verdict(VerdictStatus.VALID, "run by this node", result.task_id, proof.scheme)
        if proof is None:
            return Verdict(VerdictStatus.UNVERIFIED, "no proof", result.task_id)
        if result.node_id != sender or proof.node_id != sender:
            return Verdict(VerdictStatus.INVALID, "result or proof names another node than its sender", result.task_id,
                           proof.scheme)
        if result.ok and content_id(result.output) != result.output_id:
            return Verdict(VerdictStatus.INVALID, "the output does not hash to the output id", result.task_id,
                           proof.scheme)
        try:
            verdict = self.verifier(proof.scheme).verify(proof, task, result)
        except GaiaError as exc:
            return Verdict(VerdictStatus.INVALID, str(exc), result.task_id, proof.scheme)
        self.store.bump({f"verdicts.{verdict.status}": 1})
        return verdict

    def should_reexecute(self, sender: str, task: Task) -> bool:
        """True when the spot-check policy picks ``sender``'s result of ``task`` for local re-execution."""
        return sender != self.node_id and self.spot.should_check(task.id, sender)

    def reexecute(self, task: Task, result: TaskResult, tolerance: Tolerance | None = None) -> Verdict:
        """Run ``task`` here and compare status, output id (or output within ``tolerance``) and fuel with
        ``result`` (slow: off handler threads)."""
        runner = self.runners.get(task.kind)
        if runner is None:
            return Verdict(VerdictStatus.UNVERIFIED, "no local runner to re-execute", task.id, "spot-check")
        self.store.bump({"spot_checks": 1})
        return compare(result, runner.run(task), tolerance)

    def reject(self, sender: str, task: Task, result: TaskResult, verdict: Verdict,
               observed_s: float | None = None) -> Credit:
        """Record a result that failed verification: no credit, and an invalid one resets the sender's trust."""
        amount = rewards.credit(task, result, verdict, observed_s=observed_s)
        self.ledger.record(sender, amount, role="granted")
        self.spot.trust.record(sender, verdict)
        return amount

    def decide(self, task: Task, redundancy: int, results: Mapping[str, TaskResult], sender: str,
               verdict: Verdict, observed: Mapping[str, float], tolerance: Tolerance | None = None) -> Outcome:
        """Settle a task once ``sender``'s verified result joined ``results`` (node id -> result).

        With one replica, ``verdict`` (proof, and spot-check when one ran) decides. With more, a
        quorum of output ids decides (outputs within the job's ``tolerance`` count as one, when it has
        one), and the replicas that agree must also agree on fuel: a fuel claim the majority
        contradicts is invalid; two different claims and no majority ask for another replica (up to
        twice the redundancy, then the smallest claim is credited).
        """
        if len(results) < redundancy:
            return Outcome("waiting", Verdict(VerdictStatus.UNVERIFIED, "waiting for the other replicas", task.id,
                                              "redundancy"))
        verdicts: dict[str, Verdict] = {sender: verdict}
        fuel: int | None = None
        if redundancy > 1:
            decided = quorum_of(results.values(), k=len(results), tolerance=tolerance)
            if decided.canonical is None:
                return self._no_quorum(task, redundancy, results, decided.verdict(sender, task.id),
                                       "no quorum among replicas")
            verdicts = {peer: decided.verdict(peer, task.id) for peer in results}
            agreeing = [results[p] for p in decided.agreeing]
            fuel, liars = agreed_fuel(agreeing)
            if fuel is None and len({r.fuel_used for r in agreeing}) > 1:
                if len(results) < 2 * redundancy:
                    return Outcome("more", Verdict(VerdictStatus.UNVERIFIED,
                                                   "replicas disagree on fuel: asking another",
                                                   task.id, "redundancy"))
                fuel = min(r.fuel_used for r in agreeing)
            for peer in liars:
                verdicts[peer] = Verdict(VerdictStatus.INVALID, f"claimed fuel {results[peer].fuel_used} but "
                                         f"{len(agreeing) - len(liars)} replicas used {fuel}", task.id, "redundancy")
        else:  # another copy's result (a late node's, or one whose spot-check ended first) was credited on its own
            results = {sender: results[sender]}
        credits = {}
        for peer, result in results.items():
            credits[peer] = amount = rewards.credit(task, result, verdicts[peer], fuel=fuel,
                                                    observed_s=observed.get(peer), uptime_s=self.uptime(peer))
            self.ledger.record(peer, amount, role="granted")
            self.spot.trust.record(peer, verdicts[peer])
        winner = next(r for p, r in results.items() if verdicts[p].ok)
        state, reason = ((TaskState.DONE, "") if winner.ok
                         else (TaskState.FAILED, f"{winner.status.value}: {winner.message}"))
        return Outcome(state, verdicts[sender], winner, reason, credits)

    def _no_quorum(self, task: Task, redundancy: int, results: Mapping[str, TaskResult], verdict: Verdict,
                   reason: str) -> Outcome:
        if len(results) >= 2 * redundancy:
            return Outcome(TaskState.FAILED, verdict, reason=reason)
        return Outcome("more", verdict, reason=reason)
