"""The submitting half of a node: jobs split into tasks, dispatched to peers, verified and credited.

A job's tasks wait in the native scheduler (priority, deadline, fair share
between jobs). The dispatcher offers them in batches to the peers with the
best benchmark score per unit of load that still have room, re-sends a task
whose peer went down, timed out or returned an invalid proof (idempotent by
task id), applies redundancy and spot-checks, and records credit for
verified work in the ledger. A job ends with every task ``ok`` or failed with
a reason; jobs and tasks are in ``state.db``, so a restarted node resumes them.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import msgpack
from attrs import define, field

from gaia_core import codec, rewards
from gaia_core.errors import GaiaError, NodeError, RejectedError, ValidationError
from gaia_core.hashing import content_id
from gaia_core.model import Proof, Status, Task, TaskResult, Verdict
from gaia_core.scheduling import Scheduler
from gaia_core.verification import SpotCheck, combine, compare, quorum_of, vote

if TYPE_CHECKING:
    from gaia_core.node import Node

log = logging.getLogger("gaia.jobs")

#: Statuses that say something about the node, not the task: run it elsewhere.
RETRY = {Status.TIMEOUT, Status.ERROR, Status.REJECTED, Status.EXPIRED, Status.CANCELLED}
#: Offers (dispatches) of one task before it fails.
MAX_ATTEMPTS = 6
#: Batch of tasks per offer message.
OFFER_BATCH = 128
#: In flight per offered core: at least MIN_DEPTH, and as many as last PIPELINE_S at the peer's
#: recent task duration, up to MAX_DEPTH (short tasks need a deep pipeline to hide round trips).
MIN_DEPTH, MAX_DEPTH, PIPELINE_S = 4, 256, 0.05
#: Weight of the newest task duration in a peer's running average.
EWMA = 0.2
#: Rejections after which a peer is not offered that task again.
PEER_FAULTS = {"over_limits", "no_runner", "bad_signature", "invalid", "too_large"}


def _offer_answers(reply: bytes, count: int) -> list[tuple[bool, str, str, float | None]]:
    """A peer's answers to an offer of ``count`` tasks: (accepted, reason, message, retry_after) each."""
    try:
        answers = [(bool(ok), str(reason), str(message), float(retry) if retry is not None else None)
                   for _task_id, ok, reason, message, retry in msgpack.unpackb(reply)]
    except Exception:  # msgpack and unpacking raise several types for a malformed reply
        answers = []
    if len(answers) != count:
        raise NodeError(f"malformed answer to an offer of {count} tasks")
    return answers


@define
class Slot:
    """One task of a job while it is being worked on."""

    job: str
    idx: int
    task: Task
    redundancy: int
    to: str | None = None
    sent: dict[str, float] = field(factory=dict)  # peer -> monotonic time the result is due
    results: dict[str, TaskResult] = field(factory=dict)  # peer -> result with a valid proof
    excluded: set[str] = field(factory=set)
    attempts: int = 0
    wanted: int = 0  # copies still to dispatch
    state: str = "pending"  # pending | done | failed
    reason: str = ""


class JobManager:
    """Jobs this node submitted, and the dispatcher that carries them out."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        self.scheduler = Scheduler()
        self.slots: dict[tuple[str, int], Slot] = {}
        self.by_task: dict[str, list[tuple[str, int]]] = {}
        self.inflight: dict[str, int] = {}
        self.backoff: dict[str, float] = {}
        self.task_seconds: dict[str, float] = {}  # peer -> running average of its tasks' wall time
        self.peer_modules: dict[str, set[str]] = {}
        self.spot = SpotCheck(rate=node.context.config.verification.spot_check)
        self._seq = 0
        self.progress: dict[str, dict[str, int]] = {}  # running job -> task counts by state
        self._last_timeout_check = 0.0
        self._lock = threading.RLock()
        self._job_finished = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="gaia-offer")
        self._checks = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gaia-spot-check")
        self._thread = threading.Thread(target=self._dispatch_loop, name="gaia-dispatch", daemon=True)
        self._resume()

    def start(self) -> None:
        """Start dispatching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching (unfinished jobs stay in state.db for the next start)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._checks.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ submitting

    def submit_frames(self, tasks: list[bytes], name: str = "", redundancy: int = 1, to: str | None = None) -> str:
        """Control-socket entry: decode task frames and :meth:`submit` them."""
        return self.submit([codec.decode(frame, Task) for frame in tasks], name=name, redundancy=redundancy, to=to)

    def submit(self, tasks: list[Task], *, name: str = "", redundancy: int = 1, to: str | None = None) -> str:
        """Create a job of ``tasks`` (each run on ``redundancy`` nodes) and return its id."""
        if not tasks:
            raise ValidationError("a job needs at least one task")
        if redundancy < 1:
            raise ValidationError(f"redundancy must be at least 1, got {redundancy}")
        if to and redundancy > 1:
            raise ValidationError("a job sent --to one node cannot run on several nodes",
                                  hint="drop --to, or use --redundancy 1")
        job = uuid.uuid4().hex[:16]
        now = time.time()
        with self.store.batch():  # the job and its tasks are durable, in one transaction, before anything runs
            self.store.defer("INSERT INTO jobs VALUES (?, ?, ?, 'running', ?, ?, NULL)",
                             (job, name, now, redundancy, self.spot.rate))
            for i, t in enumerate(tasks):
                self.store.defer("INSERT INTO tasks (id, job, idx, state, task, peers, updated) "
                                 "VALUES (?, ?, ?, 'pending', ?, ?, ?)", (t.id, job, i, codec.encode(t), to or "", now))
        with self._lock:
            self.progress[job] = {"pending": len(tasks), "done": 0, "failed": 0}
            for i, task in enumerate(tasks):
                self._add_slot(Slot(job, i, task, redundancy, to, wanted=redundancy))
        log.info("job submitted", extra={"job": job, "tasks": len(tasks), "redundancy": redundancy})
        self._wake.set()
        return job

    def _add_slot(self, slot: Slot) -> None:
        key = (slot.job, slot.idx)
        self.slots[key] = slot
        self.by_task.setdefault(slot.task.id, []).append(key)
        for _ in range(slot.wanted):
            self._push(slot)

    def _push(self, slot: Slot) -> None:
        self._seq += 1
        self.scheduler.push(f"{slot.job}/{slot.idx}/{self._seq}", slot.task.priority, slot.task.deadline, slot.job)

    def _resume(self) -> None:
        rows = self.store.rows("""SELECT t.job, t.idx, t.task, t.peers, j.redundancy FROM tasks t JOIN jobs j ON j.id = t.job
                                  WHERE j.status = 'running' AND t.state = 'pending'""")
        count = 0
        with self._lock:
            for row in rows:
                task = codec.decode(row["task"], Task)
                self._add_slot(Slot(row["job"], row["idx"], task, row["redundancy"], row["peers"] or None,
                                    wanted=row["redundancy"]))
                counts = self.progress.setdefault(row["job"], {"pending": 0, "done": 0, "failed": 0})
                counts["pending"] += 1
                count += 1
        self.store.execute("UPDATE jobs SET status = 'finished', finished = ? WHERE status = 'running' AND id NOT IN "
                           "(SELECT job FROM tasks WHERE state = 'pending')", (time.time(),))
        for job, counts in self.progress.items():
            for state, n in self.store.execute("SELECT state, COUNT(*) FROM tasks WHERE job = ? AND state != 'pending' "
                                               "GROUP BY state", (job,)):
                counts[state] = n
        if count:
            log.info("resumed unfinished jobs", extra={"tasks": count})

    # ------------------------------------------------------------------ dispatch

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            try:
                self._check_timeouts()
                self._dispatch()
            except Exception:  # keep dispatching whatever one round hit
                log.exception("dispatch round failed")

    def _candidates(self) -> tuple[dict[str, float], dict[str, int]]:
        """Score and free room of every node that is up (this node included, when it runs tasks)."""
        node = self.node
        now = time.monotonic()
        up = {p.node_id for p in node.transport.peers() if p.state == "up"} & set(node.peer_records)
        if node.runners:
            up.add(node.node_id)
        scores: dict[str, float] = {}
        room: dict[str, int] = {}
        for peer_id in up:
            record = self._record(peer_id)
            inflight = self.inflight.get(peer_id, 0)
            speed = record.benchmark.get("cpu.gflops_all", 1.0)
            speed = speed if math.isfinite(speed) and speed > 0 else 1.0  # announced by the peer: untrusted
            scores[peer_id] = speed / (1.0 + record.load + inflight / record.cores)
            room[peer_id] = 0 if self.backoff.get(peer_id, 0) > now else max(0, self._window(peer_id, record) - inflight)
        return scores, room

    def _window(self, peer: str, record: Any) -> int:
        """Tasks a peer may hold at once: enough to keep each core busy for ``PIPELINE_S`` seconds."""
        per_task = self.task_seconds.get(peer)
        depth = MIN_DEPTH if per_task is None else min(MAX_DEPTH, max(MIN_DEPTH, int(PIPELINE_S / max(per_task, 1e-6))))
        return depth * record.cores

    def _dispatch(self) -> None:
        with self._lock:
            if not len(self.scheduler):
                return
            scores, room = self._candidates()
            if not any(room.values()):
                return
            keys = self.scheduler.pop_many(sum(room.values()))
            batches: dict[str, list[Slot]] = {}
            deferred = []
            for key in keys:
                job, idx, _ = key.split("/")
                slot = self.slots.get((job, int(idx)))
                if slot is None or slot.state != "pending":
                    continue
                allowed = self._allowed(slot, scores)
                if not allowed and not slot.sent:
                    self._finish_failed(slot, slot.reason or "no node that is up can run this task")
                    continue
                free = [p for p in allowed if room[p] > 0]
                if not free:
                    deferred.append(slot)
                    continue
                peer = max(free, key=lambda p: scores[p] / (1 + self.inflight.get(p, 0)))
                room[peer] -= 1
                slot.sent[peer] = time.monotonic() + 2 * slot.task.limits.timeout_s + 10.0
                slot.attempts += 1
                self.inflight[peer] = self.inflight.get(peer, 0) + 1
                batches.setdefault(peer, []).append(slot)
            for slot in deferred:
                self._push(slot)
        for peer, slots in batches.items():
            for start in range(0, len(slots), OFFER_BATCH):
                self._pool.submit(self._offer, peer, slots[start:start + OFFER_BATCH])

    def _record(self, peer: str) -> Any:
        return self.node.record if peer == self.node.node_id else self.node.peer_records[peer]

    def _allowed(self, slot: Slot, scores: dict[str, float]) -> list[str]:
        return [p for p in scores if p not in slot.excluded and p not in slot.sent and p not in slot.results
                and (slot.to is None or p == slot.to) and slot.task.kind in self._record(p).task_kinds]

    def _offer(self, peer: str, slots: list[Slot]) -> None:
        node = self.node
        if peer == node.node_id:
            for slot in slots:
                try:
                    node.admit(slot.task, origin=node.node_id)
                except RejectedError as exc:
                    self._offer_refused(peer, slot, exc.reason, str(exc), exc.retry_after)
            return
        known = self.peer_modules.setdefault(peer, set())
        frames = [codec.encode(s.task.without_module() if s.task.module_id in known else s.task) for s in slots]
        try:
            reply = node.transport.request(peer, "task.offer", msgpack.packb(frames), timeout=10.0)
            answers = _offer_answers(reply, len(slots))
        except GaiaError as exc:
            log.warning("offer failed", extra={"peer": peer[:16], "tasks": len(slots), "error": str(exc)})
            self.backoff[peer] = time.monotonic() + 1.0
            for slot in slots:
                self._offer_refused(peer, slot, "unreachable", str(exc), None)
            return
        for slot, (ok, reason, message, retry_after) in zip(slots, answers):
            if ok:
                known.add(slot.task.module_id)
            elif reason == "bad_module" and slot.task.module_id in known:
                known.discard(slot.task.module_id)
                self._offer_refused(peer, slot, "retry", message, None)
            else:
                self._offer_refused(peer, slot, reason, message, retry_after)
        self.store.bump({"offers": len(slots)})

    def _offer_refused(self, peer: str, slot: Slot, reason: str, message: str, retry_after: float | None) -> None:
        with self._lock:
            if not self._release(peer, slot):
                return  # already released: the peer went down, was late, or answered meanwhile
            if reason in ("bad_id", "expired"):
                self._finish_failed(slot, f"{reason}: {message}")
                return
            if reason == "queue_full":
                self.backoff[peer] = time.monotonic() + (retry_after or 0.2)
            elif reason in PEER_FAULTS:
                slot.excluded.add(peer)
            slot.reason = f"{reason}: {message}"
            if reason != "retry" and slot.attempts >= MAX_ATTEMPTS:
                self._finish_failed(slot, slot.reason)
                return
            self._push(slot)
        self._wake.set()

    def _release(self, peer: str, slot: Slot) -> bool:
        """Forget that ``peer`` holds ``slot``; False when it did not (already released)."""
        if slot.sent.pop(peer, None) is None:
            return False
        self.inflight[peer] = max(0, self.inflight.get(peer, 0) - 1)
        return True

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        if now - self._last_timeout_check < 0.5:
            return
        self._last_timeout_check = now
        with self._lock:
            late = [(peer, slot) for slot in self.slots.values() if slot.state == "pending"
                    for peer, due in slot.sent.items() if due < now]
        for peer, slot in late:
            log.warning("task late; re-sending", extra={"task_id": slot.task.id[:16], "peer": peer[:16]})
            with self._lock:
                slot.excluded.add(peer)
            self._offer_refused(peer, slot, "late", "no result in time", None)

    def on_peer_down(self, peer: str) -> None:
        """Re-send every task the peer held."""
        with self._lock:
            held = [slot for slot in self.slots.values() if slot.state == "pending" and peer in slot.sent]
        for slot in held:
            self._offer_refused(peer, slot, "peer_down", "peer went down", None)
        if held:
            log.warning("peer down; re-sending its tasks", extra={"peer": peer[:16], "tasks": len(held)})

    # ------------------------------------------------------------------ results

    def on_results(self, sender: str, items: list[tuple[TaskResult, Proof | None]]) -> list[list[Any]]:
        """Take results from ``sender``: verify, apply redundancy and spot-checks, credit. Returns acks.

        A result counts for every task of this node's jobs with that id that ``sender`` holds
        (identical tasks have one id, and a worker runs them once).
        """
        acks = []
        for result, proof in items:
            with self._lock:
                held = [self.slots[k] for k in self.by_task.get(result.task_id, ())
                        if self.slots[k].state == "pending" and sender in self.slots[k].sent]
            verdict, credit = Verdict("unverified", "no such task outstanding for this node", result.task_id), 0.0
            for slot in held:
                verdict, credit = self._on_result(sender, slot, result, proof)
            acks.append([result.task_id, verdict.status, credit])
        self._wake.set()
        return acks

    def _on_result(self, sender: str, slot: Slot, result: TaskResult, proof: Proof | None) -> tuple[Verdict, float]:
        with self._lock:
            if not self._release(sender, slot):
                return Verdict("unverified", "already settled", result.task_id), 0.0
            slot.excluded.add(sender)  # a peer that answered a slot never gets another copy of it
        verdict = self._verify(sender, slot.task, result, proof)
        if not verdict.ok:
            if result.status in RETRY and verdict.status == "unverified":
                verdict = Verdict("unverified", f"{result.status.value}: {result.message}", result.task_id)
            else:
                log.warning("invalid result rejected", extra={"peer": sender[:16], "reason": verdict.reason})
            self.node.ledger.record(sender, result, verdict, rewards.credit(result, verdict), role="granted")
            self.spot.trust.record(sender, verdict)
            self._retry(sender, slot, f"{verdict.status}: {verdict.reason}")
            return verdict, 0.0
        if result.status in RETRY:
            self._retry(sender, slot, f"{result.status.value}: {result.message}")
            return Verdict("unverified", f"{result.status.value} is not a final result", result.task_id), 0.0
        if self.spot.should_check(result.task_id, sender) and sender != self.node.node_id:
            # Re-execution takes as long as the task: do it off the transport's handler thread.
            self._checks.submit(self._spot_checked, sender, slot, result, verdict)
            return Verdict("unverified", "spot-check under way", result.task_id, "spot-check"), 0.0
        return self._accept(sender, slot, result, verdict)

    def _spot_checked(self, sender: str, slot: Slot, result: TaskResult, verdict: Verdict) -> None:
        try:
            verdict = combine([verdict, self._spot_check(slot.task, result)])
        except Exception:  # keep checking later results whatever this one raised
            log.exception("spot-check failed", extra={"task_id": result.task_id})
            verdict = Verdict("unverified", "the spot-check itself failed", result.task_id, "spot-check")
        if verdict.ok:
            self._accept(sender, slot, result, verdict)
        else:
            self.node.ledger.record(sender, result, verdict, rewards.credit(result, verdict), role="granted")
            self.spot.trust.record(sender, verdict)
            self._retry(sender, slot, f"spot-check: {verdict.reason}")
        self._wake.set()

    def _accept(self, sender: str, slot: Slot, result: TaskResult, verdict: Verdict) -> tuple[Verdict, float]:
        """Count a verified result toward its slot (redundancy, credit, completion)."""
        with self._lock:
            last = self.task_seconds.get(sender)
            self.task_seconds[sender] = result.wall_s if last is None else (1 - EWMA) * last + EWMA * result.wall_s
            slot.results[sender] = result
            return self._decide(slot, sender, verdict)

    def _verify(self, sender: str, task: Task, result: TaskResult, proof: Proof | None) -> Verdict:
        if sender == self.node.node_id and proof is not None:
            return Verdict("valid", "run by this node", result.task_id, proof.scheme)
        if proof is None:
            return Verdict("unverified", "no proof", result.task_id)
        if result.node_id != sender or proof.node_id != sender:
            return Verdict("invalid", "result or proof names another node than its sender", result.task_id, proof.scheme)
        if result.ok and content_id(result.output) != result.output_id:
            return Verdict("invalid", "the output does not hash to the output id", result.task_id, proof.scheme)
        try:
            verdict = self.node.verifier(proof.scheme).verify(proof, task, result)
        except GaiaError as exc:
            return Verdict("invalid", str(exc), result.task_id, proof.scheme)
        self.store.bump({f"verdicts.{verdict.status}": 1})
        return verdict

    def _spot_check(self, task: Task, result: TaskResult) -> Verdict:
        runner = self.node.runners.get(task.kind)
        if runner is None:
            return Verdict("unverified", "no local runner to re-execute", task.id, "spot-check")
        self.store.bump({"spot_checks": 1})
        return compare(result, runner.run(task))

    def _decide(self, slot: Slot, sender: str, verdict: Verdict) -> tuple[Verdict, float]:
        """Called with the lock held once a verified result is in."""
        if len(slot.results) < slot.redundancy:
            return Verdict("unverified", "waiting for the other replicas", slot.task.id, "redundancy"), 0.0
        decided = quorum_of(slot.results.values(), k=len(slot.results))
        if decided.canonical is None and slot.redundancy > 1:
            if len(slot.results) >= 2 * slot.redundancy:
                self._finish_failed(slot, "no quorum among replicas")
            else:
                self._push(slot)
            return decided.verdict(sender, slot.task.id), 0.0
        granted = 0.0
        for peer, result in slot.results.items():
            peer_verdict = decided.verdict(peer, slot.task.id) if slot.redundancy > 1 else verdict
            amount = rewards.credit(result, peer_verdict, uptime_s=self._uptime(peer))
            self.node.ledger.record(peer, result, peer_verdict, amount, role="granted")
            self.spot.trust.record(peer, peer_verdict)
            if peer == sender:
                granted = amount.total
        winner = next(r for r in slot.results.values() if decided.canonical is None or vote(r) == decided.canonical)
        if winner.ok:
            self._finish_ok(slot, winner)
        else:  # a verified, deterministic failure (trap, out of fuel, ...): final, with its result
            self._finish_failed(slot, f"{winner.status.value}: {winner.message}", winner)
        return (decided.verdict(sender, slot.task.id) if slot.redundancy > 1 else verdict), granted

    def _uptime(self, peer: str) -> float:
        first = self.node.started_at if peer == self.node.node_id else self.node.first_seen.get(peer)
        return 0.0 if first is None else time.time() - first

    def _retry(self, peer: str, slot: Slot, reason: str) -> None:
        with self._lock:
            slot.excluded.add(peer)
            slot.reason = reason
            if slot.attempts >= MAX_ATTEMPTS:
                self._finish_failed(slot, reason)
            else:
                self._push(slot)

    def _finish_ok(self, slot: Slot, result: TaskResult) -> None:
        if slot.state != "pending":
            return
        slot.state = "done"
        self.store.defer("UPDATE tasks SET state = 'done', result = ?, peers = ?, attempts = ?, updated = ? "
                           "WHERE job = ? AND idx = ?",
                           (codec.encode(result), ",".join(slot.results), slot.attempts, time.time(), slot.job, slot.idx))
        self._settle(slot)

    def _finish_failed(self, slot: Slot, reason: str, result: TaskResult | None = None) -> None:
        if slot.state != "pending":
            return
        slot.state = "failed"
        slot.reason = reason
        self.store.defer("UPDATE tasks SET state = 'failed', reason = ?, result = ?, attempts = ?, updated = ? "
                         "WHERE job = ? AND idx = ?",
                         (reason, codec.encode(result) if result else None, slot.attempts, time.time(), slot.job,
                          slot.idx))
        log.warning("task failed", extra={"job": slot.job, "idx": slot.idx, "reason": reason})
        self._settle(slot)

    def _settle(self, slot: Slot) -> None:
        for peer in list(slot.sent):  # replicas still out are no longer wanted
            self._release(peer, slot)
        key = (slot.job, slot.idx)
        self.slots.pop(key, None)
        keys = self.by_task.get(slot.task.id, [])
        if key in keys:
            keys.remove(key)
        if not keys:
            self.by_task.pop(slot.task.id, None)
        counts = self.progress[slot.job]
        counts["pending"] -= 1
        counts[slot.state] += 1
        if not counts["pending"]:
            del self.progress[slot.job]
            self._job_finished.notify_all()
            self.store.defer("UPDATE jobs SET status = 'finished', finished = ? WHERE id = ?", (time.time(), slot.job))
            log.info("job finished", extra={"job": slot.job})

    def record_earned(self, submitter: str, results: list[TaskResult], reply: bytes) -> None:
        """Record in this (worker) node's ledger the credit a submitter reported granting."""
        try:
            acks = msgpack.unpackb(reply)
        except Exception:  # msgpack raises several types for bad bytes
            return
        if not isinstance(acks, list):
            return
        for result, ack in zip(results, acks):
            if not (isinstance(ack, list) and len(ack) == 3 and isinstance(ack[2], (int, float))):
                continue
            task_id, status, credit = ack
            if task_id == result.task_id and status in ("valid", "invalid"):
                amount = rewards.Credit(0.0, 0.0, 1.0, 1.0, float(credit))
                self.node.ledger.record(submitter, result, Verdict(status, "reported by submitter", task_id),
                                        amount, role="earned")

    # ------------------------------------------------------------------ queries

    def job_status(self, job: str) -> dict[str, Any]:
        """A job's progress: task counts by state, and whether it is finished."""
        rows = self.store.execute("SELECT status, name, created, finished FROM jobs WHERE id = ?", (job,))
        if not rows:
            raise NodeError(f"no job {job!r} on this node", hint="list jobs with `gaia task list`")
        status, name, created, finished = rows[0]
        with self._lock:
            counts = dict(self.progress.get(job, {}))
        if not counts:
            counts = dict(self.store.execute("SELECT state, COUNT(*) FROM tasks WHERE job = ? GROUP BY state", (job,)))
        return {"job": job, "name": name, "status": status, "created": created, "finished": finished,
                "tasks": counts, "total": sum(counts.values())}

    def wait_job(self, job: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until ``job`` finishes (or ``timeout`` passes); return its status."""
        with self._job_finished:
            self._job_finished.wait_for(lambda: job not in self.progress, timeout)
        return self.job_status(job)

    def job_results(self, job: str, release: bool = False) -> list[dict[str, Any]]:
        """Every task's outcome, in order; ``release`` deletes the payloads afterwards."""
        status = self.job_status(job)
        out = list(self.store.rows("SELECT idx, id, state, result, peers, attempts, reason FROM tasks "
                                   "WHERE job = ? ORDER BY idx", (job,)))
        if release and status["status"] == "finished":
            self.store.purge_payloads(job)
        return out

    def list_jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent jobs with their task counts."""
        jobs = [r[0] for r in self.store.execute("SELECT id FROM jobs ORDER BY created DESC LIMIT ?", (limit,))]
        return [self.job_status(j) for j in jobs]

    def summary(self) -> dict[str, int]:
        """Jobs by status."""
        return dict(self.store.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
