"""The dispatcher: which task goes to which node, and what happens when a node refuses, is late or goes down.

A job's tasks wait in the native scheduler (priority, deadline, fair share between jobs). Each
round offers them in batches to the candidates with the best score per unit of load that still
have room. The score starts from the node's benchmark figure (the prior) and moves toward what this
node observed: the time from dispatch to a verified result. A node that holds a task past its due
time loses it (the task is re-sent elsewhere; the late node's answer still counts if it comes first),
gets a strike, is backed off and may hold only one task until it answers again. The due time adapts
to what was observed: a multiple of the p95 dispatch-to-result time of the job's verified results
(or of the node's, if slower), never under :data:`FLOOR_S`, never over the cap that the task's own
timeout sets; this node's own copies always get the cap (it knows its own queue).

Nothing here touches a socket or a clock of its own: ``send`` and ``clock`` are injected, so every
rule is unit-tested in milliseconds (tests/test_dispatch.py).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Mapping

from attrs import define, field, frozen

from gaia_core.model import Task, TaskResult, TaskState
from gaia_core.scheduling import Scheduler

#: Offers (dispatches) of one task before it fails.
MAX_ATTEMPTS = 6
#: Batch of tasks per offer message.
OFFER_BATCH = 128
#: In flight per offered core: at least MIN_DEPTH, and as many as last PIPELINE_S at the peer's
#: recent task duration, up to MAX_DEPTH (short tasks need a deep pipeline to hide round trips).
MIN_DEPTH, MAX_DEPTH, PIPELINE_S = 4, 256, 0.05
#: A peer's core count is its own claim: until it has returned a verified result, its window counts at
#: most this many cores, so announcing a huge count cannot take every queued task in one round.
UNPROVEN_CORES = 8
#: Weight of the newest observation in a running average.
EWMA = 0.2
#: Refusals after which a node is not offered that task again.
PEER_FAULTS = {"over_limits", "no_runner", "bad_signature", "invalid", "too_large"}
#: Refusals that end the task at once (the task itself is wrong).
TASK_FAULTS = {"bad_id", "expired"}
#: Reasons this node gives itself, never a peer: a peer naming one is at fault.
OWN_REASONS = {"retry", "late", "peer_down", "unreachable"}
#: Ways a task comes back unanswered: silent peers cannot use them up the attempts of a task this node can run.
SILENCE = {"late", "peer_down", "unreachable"}
#: A task is late after LATE_FACTOR x the observed p95 dispatch-to-result time, at least FLOOR_S.
LATE_FACTOR, FLOOR_S = 4.0, 2.0
#: Observations needed before a p95 is trusted; observations kept per job and per node.
MIN_OBSERVED, OBSERVED = 5, 64
#: Longest back-off of a node that left tasks unanswered (doubling per strike from 1 s).
MAX_BACKOFF_S = 30.0
#: How long a task that no node has refused may find no node that is up and able to take it before it
#: fails: peers come up a few seconds after a (re)start, and a replica's other holders may be reconnecting.
STRANDED_S = 30.0


@define
class Slot:
    """One task of a job while it is being worked on."""

    job: str
    idx: int
    task: Task
    redundancy: int
    to: str | None = None
    sent: dict[str, float] = field(factory=dict)  # node -> clock time after which its copy is given up
    overdue: dict[str, float] = field(factory=dict)  # late node -> the same: its answer still counts until then
    started: dict[str, float] = field(factory=dict)  # node -> clock time it was dispatched
    observed: dict[str, float] = field(factory=dict)  # node -> seconds from dispatch to result, as seen here
    results: dict[str, TaskResult] = field(factory=dict)  # node -> result with a valid proof
    excluded: set[str] = field(factory=set)
    attempts: int = 0
    wanted: int = 0  # copies still to dispatch
    state: TaskState = TaskState.PENDING
    reason: str = ""
    stranded_since: float | None = None  # clock time since which no node that is up could take it


@frozen
class Candidate:
    """A node that could take tasks now: its offer and its benchmark figure (the prior for its speed)."""

    node_id: str
    cores: int
    task_kinds: frozenset[str]
    load: float = 0.0
    prior: float = 1.0


class Observed:
    """Recent dispatch-to-result times (seconds), with their p95 once there are enough."""

    def __init__(self) -> None:
        self.times: collections.deque[float] = collections.deque(maxlen=OBSERVED)

    def add(self, seconds: float) -> None:
        """Record one observation."""
        self.times.append(seconds)

    def p95(self) -> float | None:
        """The 95th percentile, or None with fewer than :data:`MIN_OBSERVED` observations."""
        if len(self.times) < MIN_OBSERVED:
            return None
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


@define
class PeerStats:
    """What this node observed of one node: its speed, and the answers it owes."""

    observed: Observed = field(factory=Observed)
    seconds: float | None = None  # running average of dispatch-to-result time
    task_seconds: float | None = None  # running average of its tasks' run time (sets pipeline depth)
    strikes: int = 0  # tasks it held past their due time since it last answered
    backoff_until: float = 0.0


def peer_refusal(reason: str, message: str, task: Task, now: float) -> tuple[str, str]:
    """What a peer's refusal of ``task`` counts as here (``now`` is wall-clock time).

    A peer cannot end a task by saying it is wrong: this node checks the task's faults itself (the
    id is its content's, the deadline is read on this node's clock), nor have it offered again without
    end by naming a reason this node gives itself. Such a refusal is the peer's fault (``invalid``):
    the task goes elsewhere and that peer is not offered it again.
    """
    expired = reason == "expired" and task.deadline is not None and task.deadline <= now
    if reason in OWN_REASONS or (reason in TASK_FAULTS and not expired):
        return "invalid", f"refused as {reason!r}, which this node does not find: {message}"
    return reason, message


class Dispatcher:
    """Slots waiting for a node, slots out at nodes, and the rules between them.

    ``send(node, slots)`` offers slots to a node (it answers later through :meth:`refused` or a
    result); ``fail(slot, reason)`` ends a slot that cannot be done, called with :attr:`lock` held.
    A copy taken back from a late node is *overdue*: the task is sent elsewhere, and the late node's
    answer still counts if it comes first (until the task's own cap).
    """

    def __init__(self, *, send: Callable[[str, list[Slot]], None], fail: Callable[[Slot, str], None],
                 clock: Callable[[], float] = time.monotonic, local: str = "") -> None:
        self.send = send
        self.local = local  # this node: it knows its own queue, so its copies are never taken back early
        self.fail = fail
        self.clock = clock
        self.lock = threading.RLock()
        self.scheduler = Scheduler()
        self.slots: dict[tuple[str, int], Slot] = {}
        self.by_task: dict[str, list[tuple[str, int]]] = {}
        self.inflight: dict[str, int] = {}
        self.peers: dict[str, PeerStats] = collections.defaultdict(PeerStats)
        self.jobs: dict[str, Observed] = collections.defaultdict(Observed)
        self._seq = 0

    # ------------------------------------------------------------------ slots

    def add(self, slot: Slot) -> None:
        """Track ``slot`` and queue the copies it still wants."""
        with self.lock:
            key = (slot.job, slot.idx)
            self.slots[key] = slot
            self.by_task.setdefault(slot.task.id, []).append(key)
            for _ in range(slot.wanted):
                self.push(slot)

    def push(self, slot: Slot) -> None:
        """Queue one more copy of ``slot`` for dispatch."""
        with self.lock:
            self._seq += 1
            self.scheduler.push(f"{slot.job}/{slot.idx}/{self._seq}", slot.task.priority, slot.task.deadline, slot.job)

    def remove(self, slot: Slot) -> None:
        """Forget an ended slot; copies still out are released."""
        with self.lock:
            for peer in list(slot.sent):
                self.release(peer, slot)
            slot.overdue.clear()
            key = (slot.job, slot.idx)
            self.slots.pop(key, None)
            keys = self.by_task.get(slot.task.id, [])
            if key in keys:
                keys.remove(key)
            if not keys:
                self.by_task.pop(slot.task.id, None)

    def forget(self, peer: str) -> None:
        """Forget what was observed of ``peer`` (this node no longer keeps its record), unless it holds tasks."""
        with self.lock:
            if not self.inflight.get(peer):
                self.peers.pop(peer, None)
                self.inflight.pop(peer, None)

    def job_ended(self, job: str) -> None:
        """Forget the times observed of ``job``: its last task ended."""
        with self.lock:
            self.jobs.pop(job, None)

    def held(self, task_id: str, peer: str) -> list[Slot]:
        """The pending slots of task ``task_id`` that ``peer`` holds."""
        with self.lock:
            return [self.slots[k] for k in self.by_task.get(task_id, ())
                    if self.slots[k].state is TaskState.PENDING
                    and (peer in self.slots[k].sent or peer in self.slots[k].overdue)]

    def release(self, peer: str, slot: Slot) -> bool:
        """Forget that ``peer`` holds ``slot``; False when it did not (already released)."""
        with self.lock:
            if slot.sent.pop(peer, None) is None:
                return False
            self.inflight[peer] = max(0, self.inflight.get(peer, 0) - 1)
            return True

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, candidates: Mapping[str, Candidate]) -> int:
        """One round: offer queued slots to the candidates with room. Returns how many were sent."""
        with self.lock:
            if not len(self.scheduler):
                return 0
            now = self.clock()
            room = {p: self._room(c, now) for p, c in candidates.items()}
            if not any(room.values()):
                return 0
            scores = self.scores(candidates)
            batches: dict[str, list[Slot]] = {}
            deferred = []
            for key in self.scheduler.pop_many(sum(room.values())):
                job, idx, _ = key.split("/")
                slot = self.slots.get((job, int(idx)))
                if slot is None or slot.state is not TaskState.PENDING:
                    continue
                allowed = [p for p, c in candidates.items() if self._may_hold(slot, c)]
                if not allowed and not slot.sent and not slot.overdue:
                    if slot.stranded_since is None:
                        slot.stranded_since = now
                    if slot.reason or now - slot.stranded_since >= STRANDED_S:  # refused: fail with why
                        self.fail(slot, slot.reason or "no node that is up can run this task")
                    else:
                        deferred.append(slot)
                    continue
                slot.stranded_since = None
                free = [p for p in allowed if room[p] > 0]
                if not free:
                    deferred.append(slot)
                    continue
                peer = max(free, key=lambda p: scores[p] / (1 + self.inflight.get(p, 0)))
                room[peer] -= 1
                slot.started[peer] = now
                slot.sent[peer] = now + self.cap(slot)
                slot.attempts += 1
                self.inflight[peer] = self.inflight.get(peer, 0) + 1
                batches.setdefault(peer, []).append(slot)
            for slot in deferred:
                self.push(slot)
        for peer, slots in batches.items():
            for start in range(0, len(slots), OFFER_BATCH):
                self.send(peer, slots[start:start + OFFER_BATCH])
        return sum(len(s) for s in batches.values())

    def scores(self, candidates: Mapping[str, Candidate]) -> dict[str, float]:
        """Each candidate's speed per unit of load: its prior, moved toward its observed speed.

        Observed speed is relative: the fastest observed average dispatch-to-result time over the
        node's own, times the best prior. The weight of observation grows with its count.
        """
        with self.lock:
            priors = {p: c.prior if math.isfinite(c.prior) and c.prior > 0 else 1.0 for p, c in candidates.items()}
            best_prior = max(priors.values(), default=1.0)
            seen = {p: s.seconds for p, s in self.peers.items() if p in candidates and s.seconds}
            fastest = min(seen.values(), default=None)
            out = {}
            for peer, c in candidates.items():
                speed = priors[peer]
                if peer in seen and fastest:
                    samples = len(self.peers[peer].observed.times)
                    weight = samples / (samples + MIN_OBSERVED)
                    speed = (1 - weight) * speed + weight * best_prior * fastest / seen[peer]
                strikes = self.peers[peer].strikes if peer in self.peers else 0
                out[peer] = speed / (1.0 + c.load + self.inflight.get(peer, 0) / c.cores) / (1 + strikes) ** 2
            return out

    @staticmethod
    def cap(slot: Slot) -> float:
        """The longest any node may hold ``slot``: what its own timeout allows, with room for queueing."""
        return 2 * slot.task.limits.timeout_s + 10.0

    def due_in(self, peer: str, slot: Slot) -> float:
        """Seconds ``peer`` has to return ``slot``'s result: adapted to what was observed, capped by the task."""
        cap = self.cap(slot)
        if peer == self.local:
            return cap
        observed = [x for x in (self.jobs[slot.job].p95() if slot.job in self.jobs else None,
                                self.peers[peer].observed.p95() if peer in self.peers else None) if x is not None]
        if not observed:
            return cap
        return min(cap, max(FLOOR_S, LATE_FACTOR * max(observed)))

    def _due(self, peer: str, slot: Slot, due: float) -> float:
        """When ``peer``'s copy of ``slot`` is late: its due time, or sooner if what was observed since says so."""
        started = slot.started.get(peer)
        return due if started is None else min(due, started + self.due_in(peer, slot))

    def _room(self, candidate: Candidate, now: float) -> int:
        stats = self.peers.get(candidate.node_id)
        inflight = self.inflight.get(candidate.node_id, 0)
        if stats is not None and stats.backoff_until > now:
            return 0
        if stats is not None and stats.strikes:  # on probation until it answers again
            return max(0, 1 - inflight)
        per_task = stats.task_seconds if stats is not None else None
        depth = MIN_DEPTH if per_task is None else min(MAX_DEPTH, max(MIN_DEPTH, int(PIPELINE_S / max(per_task, 1e-6))))
        proven = per_task is not None or candidate.node_id == self.local
        return max(0, depth * (candidate.cores if proven else min(candidate.cores, UNPROVEN_CORES)) - inflight)

    def _last_resort(self, slot: Slot) -> bool:
        """Whether ``slot``, out of attempts because peers kept it unanswered, may still run on this node:
        one copy wanted, sent nowhere in particular, never tried here."""
        return bool(self.local) and slot.redundancy == 1 and slot.to is None and self.local not in slot.started

    @staticmethod
    def _may_hold(slot: Slot, candidate: Candidate) -> bool:
        peer = candidate.node_id
        return (peer not in slot.excluded and peer not in slot.sent and peer not in slot.results
                and (slot.to is None or peer == slot.to) and slot.task.kind in candidate.task_kinds)

    # ------------------------------------------------------------------ answers

    def answered(self, peer: str, slot: Slot) -> bool:
        """``peer`` returned a result for ``slot``: it is alive (strikes cleared), and never gets that slot again.

        False when ``peer`` no longer held the slot (already released: down, or answered; a late
        node's copy counts until the cap).
        """
        with self.lock:
            started = slot.started.get(peer)
            if not self.release(peer, slot) and slot.overdue.pop(peer, None) is None:
                return False
            slot.excluded.add(peer)
            stats = self.peers[peer]
            stats.strikes = 0
            stats.backoff_until = 0.0
            if started is not None:
                slot.observed[peer] = max(0.0, self.clock() - started)
            return True

    def verified(self, peer: str, slot: Slot, run_s: float) -> None:
        """``peer``'s answer to ``slot`` passed verification: its times count toward speed and due times.

        Only verified answers count, so a node cannot make others look late by answering junk fast.
        """
        with self.lock:
            stats = self.peers[peer]
            stats.task_seconds = run_s if stats.task_seconds is None else (1 - EWMA) * stats.task_seconds + EWMA * run_s
            seconds = slot.observed.get(peer)
            if seconds is not None:
                stats.observed.add(seconds)
                self.jobs[slot.job].add(seconds)
                stats.seconds = seconds if stats.seconds is None else (1 - EWMA) * stats.seconds + EWMA * seconds

    def refused(self, peer: str, slot: Slot, reason: str, message: str, retry_after: float | None = None) -> None:
        """``peer`` refused ``slot``, could not be reached, went down or was late: send it elsewhere or fail it."""
        with self.lock:
            if not self.release(peer, slot):
                return  # already released: the node went down, was late, or answered meanwhile
            if reason in TASK_FAULTS:
                self.fail(slot, f"{reason}: {message}")
                return
            if reason == "queue_full":
                self.peers[peer].backoff_until = self.clock() + (retry_after or 0.2)
            elif reason == "unreachable":
                self.peers[peer].backoff_until = self.clock() + 1.0
            elif reason in PEER_FAULTS:
                slot.excluded.add(peer)
            slot.reason = f"{reason}: {message}"
            if reason != "retry" and slot.attempts >= MAX_ATTEMPTS:
                if reason in SILENCE and self._last_resort(slot):
                    slot.to = self.local  # peers held it and never answered: run it here, once
                else:
                    self.fail(slot, slot.reason)
                    return
            self.push(slot)

    def retry(self, peer: str, slot: Slot, reason: str) -> None:
        """``peer``'s result cannot count (failed verification, or a failure of the node): run it elsewhere."""
        with self.lock:
            slot.excluded.add(peer)
            slot.reason = reason
            if slot.attempts >= MAX_ATTEMPTS:
                self.fail(slot, reason)
            else:
                self.push(slot)

    def late(self) -> list[tuple[str, Slot]]:
        """Take back every copy held past its due time and send the task elsewhere.

        Each node that held one gets a strike and a back-off; its copy is overdue until the cap.
        """
        now = self.clock()
        with self.lock:
            pending = [slot for slot in self.slots.values() if slot.state is TaskState.PENDING]
            for slot in pending:
                for peer in [p for p, until in slot.overdue.items() if until < now]:
                    del slot.overdue[peer]
            late = [(peer, slot) for slot in pending for peer, due in slot.sent.items()
                    if self._due(peer, slot, due) < now]
            for peer, slot in late:
                slot.excluded.add(peer)
                self.strike(peer)
                until = slot.sent.get(peer, 0.0)  # none when an earlier copy's failure ended the task
                self.refused(peer, slot, "late", "no result in time")
                if slot.state is TaskState.PENDING and until > now:
                    slot.overdue[peer] = until
            return late

    def strike(self, peer: str) -> None:
        """``peer`` left tasks unanswered (late, or idle while holding them): back it off, doubling per strike."""
        with self.lock:
            stats = self.peers[peer]
            stats.strikes += 1
            stats.backoff_until = self.clock() + min(MAX_BACKOFF_S, 2.0 ** (stats.strikes - 1))

    def peer_down(self, peer: str) -> list[Slot]:
        """Send elsewhere every slot ``peer`` held."""
        with self.lock:
            for slot in self.slots.values():
                slot.overdue.pop(peer, None)
            held = [slot for slot in self.slots.values() if slot.state is TaskState.PENDING and peer in slot.sent]
            for slot in held:
                self.refused(peer, slot, "peer_down", "peer went down")
            return held
