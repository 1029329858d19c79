"""The submitting half of a node: :class:`JobManager` composes the job store, the dispatcher and settlement.

It takes jobs from the control socket, writes them to the job store before anything runs, lets the
dispatcher (:mod:`gaia_core.jobs.dispatcher`) place their tasks, carries offers to the nodes, and
passes each result to settlement (:mod:`gaia_core.jobs.settlement`): verification, redundancy,
spot-checks and credit. A task ends once, ``done``, ``failed`` with a reason, or ``cancelled`` by
its owner; jobs and tasks are in ``state.db``, so a restarted node resumes them. As a worker it
records the credit its submitters report (``earned``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgpack

from gaia_core import codec
from gaia_core.errors import CodecError, GaiaError, NodeError, RejectedError, ValidationError
from gaia_core.jobs.dispatcher import Candidate, Dispatcher, Slot, peer_refusal
from gaia_core.jobs.earnings import Earnings
from gaia_core.jobs.jobstore import JobStore
from gaia_core.jobs.messages import OFFER, SETTLED, OfferAnswer, OfferReply, ResultAck, ResultAcks, Settlement
from gaia_core.jobs.settlement import Settlement as Settler
from gaia_core.jobs.unsettled import Unsettled
from gaia_core.model import JobStatus, NodeRecord, Proof, Status, Task, TaskResult, TaskState, Verdict, VerdictStatus
from gaia_core.rewards import Credit
from gaia_core.verification import SpotCheck, Tolerance, combine

if TYPE_CHECKING:
    from gaia_core.node import Node

log = logging.getLogger("gaia.jobs")

#: Statuses that say something about the node, not the task: run it elsewhere.
RETRY = {Status.TIMEOUT, Status.ERROR, Status.REJECTED, Status.EXPIRED, Status.CANCELLED}
#: Tries to deliver one settlement message to a worker.
SETTLE_TRIES = 3
#: Below this many tasks held by this node's own queue, each of its results wakes the dispatcher.
TOP_UP_BELOW = 8


def _offer_answers(reply: bytes, task_ids: list[str]) -> list[OfferAnswer]:
    """A peer's answers to an offer of the tasks ``task_ids``, in order (an answer names its task, or none
    when the worker could not decode it)."""
    count = len(task_ids)
    try:
        answers = codec.decode(reply, OfferReply).answers
    except CodecError as exc:
        raise NodeError(f"malformed answer to an offer of {count} tasks: {exc}") from None
    if len(answers) != count:
        raise NodeError(f"malformed answer to an offer of {count} tasks: {len(answers)} answers")
    if any(a.task_id not in ("", task_id) for a, task_id in zip(answers, task_ids, strict=True)):
        raise NodeError(f"malformed answer to an offer of {count} tasks: an answer names another task")
    return list(answers)


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    """Log what background work (an offer, a settlement, a spot-check) raised, instead of losing it."""
    exc = None if future.cancelled() else future.exception()
    if exc is not None:
        log.error("background job work failed", exc_info=exc)


class JobManager:
    """Jobs this node submitted, and the dispatcher that carries them out."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = node.store
        self.jobstore = JobStore(node.store)
        self.dispatcher = Dispatcher(send=self._send_offer, fail=self._finish_failed, local=node.node_id)
        self.peer_modules: dict[str, set[str]] = {}
        self.spot = SpotCheck(rate=node.context.config.verification.spot_check)
        self.settlement = Settler(node_id=node.node_id, verifier=node.verifier, runners=node.runners,
                                  ledger=node.ledger, store=node.store, spot=self.spot, uptime=self._uptime)
        self.earnings = Earnings(node.ledger, node.store)
        self.unsettled = Unsettled(ledger=node.ledger)  # credits a worker has not taken yet: sent again, durably
        self.progress: dict[str, dict[str, int]] = {}  # running job -> task counts by state
        self.tolerances: dict[str, Tolerance] = {}  # running job -> how its replicas are compared (else by bytes)
        self._idle: dict[str, float] = {}  # peer -> dispatcher time of its last record, when that had no load
        self._lock = self.dispatcher.lock
        self._job_finished = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._own_held = 0  # tasks this node's own queue held after the last dispatch round
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="gaia-offer")
        self._checks = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gaia-spot-check")
        self._checking: set[concurrent.futures.Future[Any]] = set()  # spot-checks queued or running
        # (job, idx) -> node -> proof of its verified result and the node's seal over them (an ItemSeal frame)
        self._proofs: dict[tuple[str, int], dict[str, tuple[Proof, bytes | None]]] = {}
        self._settling = threading.Lock()  # a spot-check's verdict is settled, or the store is about to close
        self._closing = False  # set by stop() under _settling: a verdict reached later is dropped
        self._thread = threading.Thread(target=self._dispatch_loop, name="gaia-dispatch", daemon=True)
        self._resume()

    def start(self) -> None:
        """Start dispatching."""
        self._thread.start()

    def stop(self, deadline: float | None = None) -> None:
        """Stop dispatching (unfinished jobs stay in state.db for the next start).

        A spot-check under way may end until ``deadline`` (``time.monotonic()``; default now) and its
        verdict is settled; one still running then, or queued, leaves its task pending for the next start.
        """
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._checks.shutdown(wait=False, cancel_futures=True)
        with self._settling:
            checking = list(self._checking)
        left = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
        concurrent.futures.wait(checking, timeout=left)
        with self._settling:
            self._closing = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ submitting

    def submit_frames(self, tasks: list[bytes], name: str = "", redundancy: int = 1, to: str | None = None,
                      tolerance: dict[str, Any] | None = None) -> str:
        """Control-socket entry: decode task frames (and the ``tolerance`` options) and :meth:`submit` them."""
        return self.submit([codec.decode(frame, Task) for frame in tasks], name=name, redundancy=redundancy, to=to,
                           tolerance=Tolerance.of(tolerance), frames=tasks)

    def submit(self, tasks: list[Task], *, name: str = "", redundancy: int = 1, to: str | None = None,
               tolerance: Tolerance | None = None, frames: list[bytes] | None = None) -> str:
        """Create a job of ``tasks`` (each run on ``redundancy`` nodes) and return its id; its replicas
        (and spot-checks) compare outputs within ``tolerance``, or byte for byte when it is None.
        ``frames`` are the tasks' codec frames when they came encoded (stored as they are)."""
        if not tasks:
            raise ValidationError("a job needs at least one task")
        if redundancy < 1:
            raise ValidationError(f"redundancy must be at least 1, got {redundancy}")
        if to and redundancy > 1:
            raise ValidationError("a job sent --to one node cannot run on several nodes",
                                  hint="drop --to, or use --redundancy 1")
        job = uuid.uuid4().hex[:16]
        # the job and its tasks are durable, in one transaction, before anything runs
        # the blobs the job names go once it is released (privacy)
        self.node.blobs.named(job, tasks, lambda: self.jobstore.create(job, name, redundancy, self.spot.rate, tasks,
                                                                       to, tolerance, frames))
        with self._lock:
            self.progress[job] = {TaskState.PENDING: len(tasks)}
            if tolerance is not None:
                self.tolerances[job] = tolerance
            for i, task in enumerate(tasks):
                self.dispatcher.add(Slot(job, i, task, redundancy, to, wanted=redundancy))
        log.info("job submitted", extra={"job": job, "tasks": len(tasks), "redundancy": redundancy})
        self._wake.set()
        return job

    def _resume(self) -> None:
        count = self._load(self.jobstore.unfinished())
        self.jobstore.close_finished_jobs()
        if count:
            log.info("resumed unfinished jobs", extra={"tasks": count})
        owed = self.unsettled.load()
        if owed:
            log.info("settlements not yet taken by their workers: sending them again", extra={"credits": owed})

    def _load(self, rows: list[dict[str, Any]]) -> int:
        """Make slots of stored task rows (pending again); quarantine rows that no longer decode."""
        count = 0
        with self._lock:
            for row in rows:
                try:
                    task = codec.decode(row["task"] or b"", Task)
                except CodecError as exc:
                    log.warning("stored task quarantined",
                                extra={"job": row["job"], "idx": row["idx"], "error": str(exc)})
                    self.jobstore.quarantine(row["job"], row["idx"], str(exc))
                    continue
                self.dispatcher.add(Slot(row["job"], row["idx"], task, row["redundancy"], row["peers"] or None,
                                         wanted=row["redundancy"]))
                self.progress.setdefault(row["job"], {})
                count += 1
            for job in {row["job"] for row in rows} & set(self.progress):
                self.progress[job] = self.jobstore.counts(job)
                tolerance = self.jobstore.tolerance(job)
                if tolerance is not None:
                    self.tolerances[job] = tolerance
        return count

    # ------------------------------------------------------------------ dispatch

    def _dispatch_loop(self) -> None:
        last_check = 0.0
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            try:
                if time.monotonic() - last_check >= 0.5:
                    last_check = time.monotonic()
                    for peer, slot in self.dispatcher.late():
                        log.warning("task late; re-sending", extra={"task_id": slot.task.id[:16], "peer": peer[:16]})
                    for peer, credits in self.unsettled.due():
                        if self._background(self._pool, self._send_settlement, peer, credits, 1) is None:
                            self.unsettled.keep(peer, credits)
                self.dispatcher.dispatch(self._candidates())
                self._own_held = self.dispatcher.inflight.get(self.node.node_id, 0)
            except Exception:  # keep dispatching whatever one round hit
                log.exception("dispatch round failed")

    def _candidates(self) -> dict[str, Candidate]:
        """Every node that is up (this node included, when it runs tasks), as the dispatcher sees it."""
        node = self.node
        up = {p.node_id for p in node.transport.peers() if p.state == "up"}
        records = {p: r for p, r in node.peer_records.items() if p in up}
        if node.runners and node.record is not None:
            records[node.node_id] = node.record
        return {p: Candidate(p, r.cores, frozenset(r.task_kinds), r.load, r.score)  # the benchmark role's score
                for p, r in records.items()}

    def _send_offer(self, peer: str, slots: list[Slot]) -> None:
        if peer == self.node.node_id:  # this node's own queue: admitted on the dispatcher's thread, no hop
            self._offer(peer, slots)
            return
        if self._background(self._pool, self._offer, peer, slots) is None:
            for slot in slots:  # stopping: the tasks stay pending in state.db
                self.dispatcher.release(peer, slot)

    def _offer(self, peer: str, slots: list[Slot]) -> None:
        node = self.node
        if peer == node.node_id:
            for slot in slots:
                try:
                    node.admit(slot.task, origin=node.node_id)
                except RejectedError as exc:
                    self._refused(peer, slot, exc.reason, str(exc), exc.retry_after)
                except Exception as exc:  # a queue plugin's bug: refused now, not held here until the task is late
                    log.exception("this node could not queue its own task", extra={"task_id": slot.task.id[:16]})
                    self._refused(peer, slot, "error", f"{type(exc).__name__}: {exc}", None)
            return
        known = self.peer_modules.setdefault(peer, set())
        frames = [codec.encode(s.task.without_module() if s.task.module_id in known else s.task) for s in slots]
        try:
            reply = node.transport.request(peer, OFFER, msgpack.packb(frames), timeout=10.0)
            answers = _offer_answers(reply, [slot.task.id for slot in slots])
        except GaiaError as exc:
            log.warning("offer failed", extra={"peer": peer[:16], "tasks": len(slots), "error": str(exc)})
            for slot in slots:
                self._refused(peer, slot, "unreachable", str(exc), None)
            return
        for slot, answer in zip(slots, answers, strict=True):  # one answer per task, checked by _offer_answers
            if answer.accepted:
                known.add(slot.task.module_id)
            elif answer.reason == "bad_module" and slot.task.module_id in known:
                known.discard(slot.task.module_id)
                self._refused(peer, slot, "retry", answer.message, None)
            else:
                reason, message = peer_refusal(answer.reason, answer.message, slot.task, time.time())
                self._refused(peer, slot, reason, message, answer.retry_after)
        self.store.bump({"offers": len(slots)})

    def _refused(self, peer: str, slot: Slot, reason: str, message: str, retry_after: float | None) -> None:
        self.dispatcher.refused(peer, slot, reason, message, retry_after)
        self._wake.set()

    def on_peer_down(self, peer: str, why: str = "peer down") -> None:
        """Re-send every task the peer held."""
        held = self.dispatcher.peer_down(peer)
        if held:
            log.warning(f"{why}; re-sending its tasks", extra={"peer": peer[:16], "tasks": len(held)})
            self._wake.set()

    def forget_peer(self, peer: str) -> None:
        """This node no longer keeps ``peer``'s record: forget what it keeps of that peer too."""
        self.dispatcher.forget(peer)
        self.spot.trust.forget(peer)
        with self._lock:
            self.peer_modules.pop(peer, None)
            self._idle.pop(peer, None)

    def on_record(self, record: NodeRecord) -> None:
        """A peer announced its record. Two in a row with nothing queued or running, while it holds
        tasks sent to it before the first, mean it restarted (or lost them) before it was marked down:
        it gets a strike and they are re-sent now, not when they are late (up to ``2 x timeout + 10 s``)."""
        peer, now = record.node_id, self.dispatcher.clock()
        with self._lock:
            if record.load > 0:
                self._idle.pop(peer, None)
                return
            previous, self._idle[peer] = self._idle.get(peer), now
            lost = previous is not None and any(slot.started.get(peer, now) < previous
                                                for slot in self.dispatcher.slots.values() if peer in slot.sent)
        if lost:  # honest (restarted) or not, it did not answer what it held: a strike, as for a late copy
            self.dispatcher.strike(peer)
            self.on_peer_down(peer, "peer idle while holding tasks (restarted?)")

    # ------------------------------------------------------------------ results

    def on_results(self, sender: str, items: list[tuple[TaskResult, Proof | None]],
                   seals: Sequence[bytes | None] = ()) -> ResultAcks:
        """Take results from ``sender``: verify, apply redundancy and spot-checks, credit. Returns the acks.

        ``seals``: for each item, ``sender``'s evidence for it (an ItemSeal frame), kept with its proof.

        A result counts for every task of this node's jobs with that id that ``sender`` holds
        (identical tasks have one id, and a worker runs them once). Credit is durable in
        ``state.db`` before the acks that report it are returned, so while the disk is full another
        node's results are refused (:class:`~gaia_core.store.DiskFull`): the worker keeps them and
        delivers them again later.
        """
        if sender != self.node.node_id and self.store.full:
            raise self.store.disk_full()
        acks = []
        for i, (result, proof) in enumerate(items):
            ack = None
            seal = seals[i] if seals else None
            for slot in self.dispatcher.held(result.task_id, sender):
                ack = self._on_result(sender, slot, result, proof, seal)
            acks.append(ack or self._delivered_before(sender, result.task_id))
        if sender != self.node.node_id:  # this node's own results are acknowledged to nobody
            self.store.flush()
            self._wake.set()
        elif self._own_queue_low():
            self._wake.set()
        return ResultAcks(acks)

    def _own_queue_low(self) -> bool:
        """Whether the dispatcher should top up this node's own queue now: it holds fewer than
        :data:`TOP_UP_BELOW` tasks, or a quarter of what it held after the last round came back. Waking
        the dispatcher for each of its own results cost a round (and a thread switch) per task; it also
        looks on its own every 50 ms."""
        held = self.dispatcher.inflight.get(self.node.node_id, 0)
        return held < TOP_UP_BELOW or held <= self._own_held * 3 // 4

    def _delivered_before(self, sender: str, task_id: str) -> ResultAck:
        """The answer to a result ``sender`` holds no task for: the credit already granted for it, if any
        (its acknowledgement may have been lost), so both ledgers agree whichever copy of the reply arrives."""
        if sender != self.node.node_id:
            amount = self.node.ledger.granted(sender, task_id)
            if amount is not None:
                return ResultAck(task_id, amount.verdict, "already settled", amount)
        return ResultAck(task_id, VerdictStatus.UNVERIFIED, "no such task outstanding for this node")

    def _on_result(self, sender: str, slot: Slot, result: TaskResult, proof: Proof | None,
                   seal: bytes | None) -> ResultAck:
        if not self.dispatcher.answered(sender, slot):
            return ResultAck(result.task_id, VerdictStatus.UNVERIFIED, "already settled")
        verdict = self.settlement.verify(sender, slot.task, result, proof)
        if not verdict.ok:
            if result.status in RETRY and verdict.status is VerdictStatus.UNVERIFIED:
                verdict = Verdict(VerdictStatus.UNVERIFIED, f"{result.status.value}: {result.message}", result.task_id)
            else:
                log.warning("invalid result rejected", extra={"peer": sender[:16], "reason": verdict.reason})
            amount = self.settlement.reject(sender, slot.task, result, verdict, slot.observed.get(sender))
            self.dispatcher.retry(sender, slot, f"{verdict.status}: {verdict.reason}")
            return ResultAck(result.task_id, verdict.status, verdict.reason, amount)
        if result.status in RETRY:
            self.dispatcher.retry(sender, slot, f"{result.status.value}: {result.message}")
            return ResultAck(result.task_id, VerdictStatus.UNVERIFIED, f"{result.status.value} is not a final result")
        self.dispatcher.verified(sender, slot, result.wall_s)
        if self.settlement.should_reexecute(sender, slot.task):
            # Re-execution takes as long as the task: do it off the transport's handler thread.
            with self._settling:  # stop() waits for (or cancels) every check it does not find refused
                check = self._background(self._checks, self._spot_checked, sender, slot, result, verdict,
                                         proof, seal)
                if check is not None:
                    self._checking.add(check)
            if check is not None:
                check.add_done_callback(self._checked)
                return ResultAck(result.task_id, VerdictStatus.UNVERIFIED, "spot-check under way", pending=True)
            return ResultAck(result.task_id, VerdictStatus.UNVERIFIED,
                             "the submitter is stopping: the task stays pending")
        return self._accept(sender, slot, result, verdict, proof, seal, acked=False)

    def _spot_checked(self, sender: str, slot: Slot, result: TaskResult, verdict: Verdict,
                      proof: Proof | None, seal: bytes | None) -> None:
        try:
            verdict = combine([verdict, self.settlement.reexecute(slot.task, result, self.tolerances.get(slot.job))])
        except Exception:  # keep checking later results whatever this one raised
            log.exception("spot-check failed", extra={"task_id": result.task_id})
            verdict = Verdict(VerdictStatus.UNVERIFIED, "the spot-check itself failed", result.task_id, "spot-check")
        with self._settling:
            if self._closing:  # the node stopped meanwhile: state.db closes, the task stays pending there
                log.info("spot-check ended after the stop; its task stays pending", extra={"task_id": result.task_id})
                return
            if verdict.ok:
                self._accept(sender, slot, result, verdict, proof, seal, acked=True)
            else:
                log.warning("spot-check refused a result", extra={"peer": sender[:16], "reason": verdict.reason})
                with self.store.atomic():  # the granted row and the settlement owed: one transaction
                    amount = self.settlement.reject(sender, slot.task, result, verdict, slot.observed.get(sender))
                    owed = self._owe({sender: amount})
                self.dispatcher.retry(sender, slot, f"spot-check: {verdict.reason}")
                self._send_settlements(owed)
        self._wake.set()

    def _checked(self, check: concurrent.futures.Future[Any]) -> None:
        with self._settling:
            self._checking.discard(check)

    def _accept(self, sender: str, slot: Slot, result: TaskResult, verdict: Verdict, proof: Proof | None,
                seal: bytes | None, *, acked: bool) -> ResultAck:
        """Count a verified result toward its slot (redundancy, credit, completion).

        Credit for the other replicas (and for ``sender`` when its delivery was ``acked`` already)
        goes to their workers in settlement messages, once it is durable.
        """
        with self._lock:
            slot.results[sender] = result
            if proof is not None:  # kept with the result that decides the task (stored by _finish_ok/_failed)
                self._proofs.setdefault((slot.job, slot.idx), {})[sender] = (proof, seal)
            with self.store.atomic():  # the granted rows and the settlements owed: one transaction
                outcome = self.settlement.decide(slot.task, slot.redundancy, slot.results, sender, verdict,
                                                 slot.observed, self.tolerances.get(slot.job))
                mine = None if acked else outcome.credits.pop(sender, None)
                owed = self._owe(outcome.credits)
                confirm = mine if sender != self.node.node_id else None
                if confirm is not None:  # a worker killed as it reads the ack loses it: confirm by settlement too
                    self.unsettled.owe({sender: confirm})
            if outcome.state == "more":
                self.dispatcher.push(slot)
            elif outcome.state is TaskState.DONE:
                assert outcome.winner is not None, "a done outcome names the result that decided it"
                self._finish_ok(slot, outcome.winner)
            elif outcome.state is TaskState.FAILED:
                self._finish_failed(slot, outcome.reason, outcome.winner)
        self._send_settlements(owed)
        if confirm is not None:
            self.unsettled.keep(sender, (confirm,))  # sent with the next round of retries (idempotent at the worker)
        return ResultAck(result.task_id, outcome.verdict.status, outcome.verdict.reason, mine,
                         pending=mine is None and outcome.state in ("waiting", "more"))

    def _owe(self, credits: dict[str, Credit]) -> dict[str, Credit]:
        """The ``credits`` other workers are to be told in settlement messages, noted as owed to them
        (call it in the :meth:`~gaia_core.store.Store.atomic` block that records their granted rows)."""
        owed = {peer: amount for peer, amount in credits.items() if peer != self.node.node_id}
        self.unsettled.owe(owed)
        return owed

    def _send_settlements(self, credits: dict[str, Credit]) -> None:
        """Tell each worker the credit it was granted after its delivery was acknowledged (durable first)."""
        if not credits:
            return
        self.store.flush()
        for peer, amount in credits.items():
            if self._background(self._pool, self._send_settlement, peer, (amount,)) is None:
                log.info("settlement not sent: this node is stopping", extra={"peer": peer[:16]})

    @staticmethod
    def _background(pool: concurrent.futures.ThreadPoolExecutor, fn: Any,
                    *args: Any) -> concurrent.futures.Future[Any] | None:
        """Run ``fn(*args)`` on ``pool``; None when the pool is shut down (this node is stopping)."""
        try:
            future = pool.submit(fn, *args)
        except RuntimeError:
            return None
        future.add_done_callback(_log_failure)
        return future

    def _send_settlement(self, peer: str, credits: tuple[Credit, ...], tries: int = SETTLE_TRIES) -> None:
        body = codec.encode(Settlement(credits))
        for attempt in range(tries):
            try:
                self.node.transport.request(peer, SETTLED, body, timeout=10.0)
                self.unsettled.sent(peer, credits)
                return
            except GaiaError as exc:
                if attempt + 1 == tries or self._stop.wait(0.5):
                    log.info("settlement not delivered; will try again", extra={"peer": peer[:16], "error": str(exc)})
                    self.unsettled.keep(peer, credits)
                    return

    def _uptime(self, peer: str) -> float:
        first = self.node.started_at if peer == self.node.node_id else self.node.first_seen.get(peer)
        return 0.0 if first is None else time.time() - first

    def _finish_ok(self, slot: Slot, result: TaskResult) -> None:
        if slot.state is TaskState.PENDING:
            self.jobstore.finish_task(slot.job, slot.idx, TaskState.DONE, result=result, peers=",".join(slot.results),
                                      attempts=slot.attempts, **self._proof_of(slot, result))
            self._settle(slot, TaskState.DONE)

    def _finish_failed(self, slot: Slot, reason: str, result: TaskResult | None = None) -> None:
        if slot.state is TaskState.PENDING:
            slot.reason = reason
            self.jobstore.finish_task(slot.job, slot.idx, TaskState.FAILED, reason=reason, result=result,
                                      attempts=slot.attempts, **self._proof_of(slot, result))
            log.warning("task failed", extra={"job": slot.job, "idx": slot.idx, "reason": reason})
            self._settle(slot, TaskState.FAILED)

    def _proof_of(self, slot: Slot, result: TaskResult | None) -> dict[str, Any]:
        """The verified ``proof`` ``result``'s node sent with it for ``slot`` and its ``seal``, if kept."""
        kept = None if result is None else self._proofs.get((slot.job, slot.idx), {}).get(result.node_id)
        return {} if kept is None else {"proof": kept[0], "seal": kept[1]}

    def _settle(self, slot: Slot, state: TaskState) -> None:
        """Called with the lock held: ``slot`` ended in ``state``; release what it held, count it."""
        slot.state = state
        self._proofs.pop((slot.job, slot.idx), None)
        self.dispatcher.remove(slot)  # replicas still out are no longer wanted
        counts = self.progress[slot.job]
        counts[TaskState.PENDING] -= 1
        counts[state] = counts.get(state, 0) + 1
        if not counts[TaskState.PENDING]:
            del self.progress[slot.job]
            self.tolerances.pop(slot.job, None)
            self.dispatcher.job_ended(slot.job)
            self._job_finished.notify_all()
            if state is not TaskState.CANCELLED:
                self.jobstore.finish_job(slot.job)
                log.info("job finished", extra={"job": slot.job})

    # ------------------------------------------------------------------ worker side: credit earned

    def record_earned(self, submitter: str, results: list[TaskResult], reply: bytes) -> None:
        """Record the credit a submitter acknowledged for ``results`` (see :class:`Earnings`)."""
        self.earnings.acknowledged(submitter, results, reply)

    def on_settlement(self, submitter: str, body: bytes) -> bytes:
        """Answer a ``task.settled`` request: record the credit it reports (see :class:`Earnings`)."""
        return self.earnings.settled(submitter, body)

    # ------------------------------------------------------------------ owners' control

    def cancel(self, job: str) -> dict[str, Any]:
        """Cancel a job (id or unique prefix): each unfinished task ends ``cancelled`` once, replicas out are
        released."""
        job = self.jobstore.resolve(job)
        with self._lock:
            for slot in [s for s in self.dispatcher.slots.values() if s.job == job]:
                self._settle(slot, TaskState.CANCELLED)
            cancelled = self.jobstore.cancel_pending(job) if self.jobstore.job(job)[0] == JobStatus.RUNNING else 0
        if cancelled:
            log.info("job cancelled", extra={"job": job, "tasks": cancelled})
        status = self.job_status(job)
        return {"job": job, "status": status["status"], "cancelled": cancelled, "tasks": status["tasks"]}

    def retry(self, job: str) -> dict[str, Any]:
        """Re-queue a job's failed tasks (id or unique prefix); the job is running again."""
        job = self.jobstore.resolve(job)
        rows = [r for r in self.jobstore.failed(job) if r["task"] is not None]
        if rows:
            with self._lock:
                self.jobstore.requeue(job, [r["idx"] for r in rows])
                if not self._load(rows):  # every one was quarantined: the job ends again at once
                    self.jobstore.close_finished_jobs()
            log.info("job retried", extra={"job": job, "tasks": len(rows)})
            self._wake.set()
        status = self.job_status(job)
        return {"job": job, "status": status["status"], "retried": len(rows), "tasks": status["tasks"]}

    # ------------------------------------------------------------------ queries

    def job_status(self, job: str) -> dict[str, Any]:
        """A job's progress (id or unique prefix): task counts by state, and whether it is finished."""
        job = self.jobstore.resolve(job)
        status, name, created, finished = self.jobstore.job(job)
        with self._lock:
            counts = {k: n for k, n in self.progress.get(job, {}).items() if n}
        if not counts:
            counts = self.jobstore.counts(job)
        return {"job": job, "name": name, "status": status, "created": created, "finished": finished,
                "tasks": counts, "total": sum(counts.values())}

    def wait_job(self, job: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until ``job`` (id or unique prefix) finishes (or ``timeout`` passes); return its status."""
        job = self.jobstore.resolve(job)
        with self._job_finished:
            self._job_finished.wait_for(lambda: job not in self.progress, timeout)
        return self.job_status(job)

    def job_results(self, job: str, release: bool = False, proofs: bool = False) -> list[dict[str, Any]]:
        """Every task's outcome, in order; ``proofs`` adds each task's task and proof frames; ``release``
        deletes the payloads of an ended job afterwards."""
        status = self.job_status(job)
        out = list(self.jobstore.results(status["job"], proofs=proofs))
        if release and status["status"] != JobStatus.RUNNING:
            self.jobstore.release(status["job"])
        return out

    def list_jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent jobs with their task counts."""
        return [self.job_status(j) for j in self.jobstore.recent(limit)]

    def summary(self) -> dict[str, int]:
        """Jobs by status."""
        return self.jobstore.summary()
