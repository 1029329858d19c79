"""The node: composes the active providers and runs the task loop.

receive (transport, through the kernel's inbound gate) → admit (the kernel's
admission checks, then the queue provider) → run (worker threads, one per
offered core, metered) → prove (prover) → ``gaia_task_finished`` → deliver the
result to its submitter (:class:`gaia_core.outbox.Outbox`, per submitter).
The submitting half (jobs, dispatch, verification, rewards) is
:class:`gaia_core.jobs.JobManager`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import msgpack

from gaia_core import __version__, admission, codec, hashing
from gaia_core.blobs.protocol import CHUNKS
from gaia_core.blobs.tasks import TaskBlobs
from gaia_core.control import ControlServer
from gaia_core.errors import GaiaError, NodeError, RejectedError, ValidationError
from gaia_core.idle import HOLD_S, IdleWatch
from gaia_core.inbound import MAX_RECORD_BYTES, RECORD, Gate
from gaia_core.jobs.messages import (
    CREDITS,
    OFFER,
    RESULTS,
    SETTLED,
    OfferAnswer,
    OfferReply,
    open_sealed_results,
    seal_results,
)
from gaia_core.model import BenchmarkReport, Envelope, NodeRecord, Proof, Status, Task, TaskResult
from gaia_core.outbox import Outbox, Pending
from gaia_core.plugins import Plugins
from gaia_core.rewards import Ledger
from gaia_core.roles import NodeContext, PeerInfo
from gaia_core.store import Store

log = logging.getLogger("gaia.node")

#: Seconds a submitter waits before offering a paused node a task again.
PAUSED_RETRY_S = 60.0
#: Peers' NodeRecords kept at most (each up to inbound.MAX_RECORD_BYTES); the node's own kind is inbound.RECORD.
MAX_PEER_RECORDS = 1024
#: Results per delivery message.
DELIVERY_BATCH = 256
#: Deliveries in flight at once, each to a different submitter.
DELIVERY_WORKERS = 8
#: Seconds stop() gives a delivery whose request the stopped transport failed to put its results back.
STOP_GRACE_S = 2.0
#: The message of a task's ``cancelled`` result when this node stopped before running it. A remote
#: submitter gets it back and re-sends the task elsewhere; this node's own such tasks get no result:
#: they stay pending in state.db and run after the next start.
QUEUE_CLOSED = "stopping: this node closed its queue before the task ran; send it elsewhere"


class Node:
    """One running GAIA node."""

    def __init__(self, context: NodeContext, plugins: Plugins) -> None:
        identity = context.identity
        if identity is None:
            raise NodeError("this node has no identity", hint="run `gaia init` first")
        runner_specs = plugins.runners_by_kind()
        self.hook = plugins.hook
        self.context = context = attrs.evolve(context, hook=self.hook, task_kinds=frozenset(runner_specs))
        self.plugins = plugins
        self.identity = identity
        self.node_id = self.identity.node_id
        config = context.config
        self.cores = config.node.task_cores()
        self._paused = threading.Event()  # `gaia pause`: no task taken or started until `gaia resume`
        if context.home.pause_file.exists():
            self._paused.set()
        self.idle = IdleWatch(config.node.busy_percent)  # `[node] busy_percent`: tasks wait while others are busy
        self.runners = {kind: spec.factory(context) for kind, spec in runner_specs.items()}
        self.benchmarks = [spec.factory(context) for _, spec in plugins.specs("benchmark")]
        # per-task cost (energy, measured or estimated), offered by benchmark providers that have ``meter()``
        self._meter = next((b for b in self.benchmarks if hasattr(b, "meter")), None)
        self._last_sample: Any = None
        self.queue = plugins.one("queue").factory(context)
        self.transport = plugins.one("transport").factory(context)
        self.prover = plugins.prover(config.prover.scheme).factory(context)
        self._verifiers: dict[str, Any] = {self.prover.scheme: self.prover}
        self.store = Store(context.home.make_private().state_db,  # home 0700 before any state is written
                           job_retention_s=config.privacy.job_retention_s)
        self.ledger = Ledger(self.store)
        self.started_at = time.time()
        self.report = BenchmarkReport()
        self.record: NodeRecord | None = None
        self.address = ""
        self.peer_records: dict[str, NodeRecord] = {}
        self.first_seen: dict[str, float] = {}
        self._admitted: dict[str, tuple[str, Task]] = {}  # task id -> (the node its result goes back to, task)
        privacy = config.privacy
        self.outbox = Outbox(per_submitter_bytes=privacy.outbox_bytes_per_submitter, total_bytes=privacy.outbox_bytes,
                             max_age_s=privacy.retention_s, failing_slots=DELIVERY_WORKERS // 2)
        self._deliveries = concurrent.futures.ThreadPoolExecutor(DELIVERY_WORKERS, thread_name_prefix="gaia-deliver")
        self._in_flight: set[concurrent.futures.Future[Any]] = set()  # on _deliveries: stop() waits for them
        self._running = 0
        self._stopping = threading.Event()  # stop() has begun: the queue is closed
        self._stop = threading.Event()  # draining is over: background threads exit
        self._stopped = threading.Event()
        self._started = threading.Event()  # start() has returned: a stop requested meanwhile may run
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        from gaia_core.jobs import JobManager

        self.jobs = JobManager(self)
        self.gate = Gate(self)  # every message from the transport passes it before a handler below sees it
        self.blobs = TaskBlobs(context.home, self.transport, self._blob_liar, may_read=self._sent_blob)
        self.control = ControlServer(context.home, self._control_methods())

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Benchmark, start the transport and control socket, join peers, start workers."""
        hashing.set_threads(self.cores)  # the one hashing pool stays within the cores this node offers
        for bench in self.benchmarks:
            self.report = self.report.merge(bench.measure(quick=True))
        self.record = self._make_record()
        self.address = self.transport.start(self.gate, self.record)  # the kernel authenticates, then calls self
        told = getattr(self.transport, "record", None) or self.record  # with the transport's signed extension
        self.record = attrs.evolve(self.record, addresses=(self.address,), transport=told.transport)
        for address in self.context.config.network.bootstrap:
            self.transport.connect(address)
        self.control.start()
        self._spawn("gaia-deliver", self._deliver_loop)
        self._spawn("gaia-housekeeping", self._housekeeping_loop)
        for i in range(self.cores):
            self._spawn(f"gaia-worker-{i}", self._worker_loop)
        self.jobs.start()
        self.hook.gaia_node_started(record=self.record, context=self.context)
        log.info("node started", extra={"node_id": self.node_id, "address": self.address, "cores": self.cores})
        self._started.set()

    def stop(self, *, drain_s: float = 10.0) -> None:
        """Stop taking work, let in-flight tasks finish (up to ``drain_s``), then close everything."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        log.info("node stopping", extra={"drain_s": drain_s})
        self.hook.gaia_node_stopping(context=self.context)
        deadline = time.monotonic() + drain_s
        self.jobs.stop(deadline)  # stop dispatching (a spot-check under way may end): unfinished tasks stay pending
        self.queue.close()
        while self._running and time.monotonic() < deadline:  # drain what is running
            time.sleep(0.05)
        self._take_dropped()  # tasks the closed queue cancelled: remote submitters re-send them
        self._flush_outbox(deadline)
        self._stop.set()
        with self.outbox.changed:
            self.outbox.changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        self._deliveries.shutdown(wait=False, cancel_futures=True)
        concurrent.futures.wait(list(self._in_flight), timeout=max(0.0, deadline - time.monotonic()))
        self.control.stop()
        self.transport.stop()  # a delivery still waiting for its reply fails now (its results back in the outbox) ...
        concurrent.futures.wait(list(self._in_flight), timeout=STOP_GRACE_S)  # ... and ends before the store closes
        for runner in self.runners.values():
            runner.close()
        self.store.close()
        self.blobs.close()
        self._stopped.set()
        log.info("node stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the node has stopped."""
        return self._stopped.wait(timeout)

    def request_stop(self) -> None:
        """Ask the node to stop from another thread (a signal, the control socket); a node still
        starting stops as soon as it has started."""
        threading.Thread(target=self._stop_once_started, name="gaia-stop", daemon=True).start()

    def _stop_once_started(self) -> None:
        self._started.wait()
        self.stop()

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _make_record(self) -> NodeRecord:
        config = self.context.config
        return NodeRecord(
            node_id=self.node_id, name=config.node.name,
            version=__version__, plugins=tuple(n for n, i in self.plugins.infos.items() if i.status == "active"),
            task_kinds=tuple(sorted(self.runners)), offer=config.offer, cores=self.cores,
            benchmark=self.report.summary(), load=self.load(),
        )

    def pause(self, paused: bool) -> bool:
        """Pause (take and start no task; running ones finish) or resume this node; kept across restarts."""
        if paused:
            self.context.home.pause_file.touch(mode=0o600)
            self._paused.set()
        else:
            self.context.home.pause_file.unlink(missing_ok=True)
            self._paused.clear()
        log.info("node paused" if paused else "node resumed")
        return paused

    def _watch_idle(self, sample: Any) -> None:
        """Feed the idle watch one sample; log when the machine turns busy (tasks wait) or idle again."""
        turned = self.idle.observe(getattr(sample, "cpu_percent", None))
        if turned is not None:
            log.info(f"machine busy: other programs use {self.idle.others_percent:.0f} % of the CPU "
                     f"(over [node] busy_percent = {self.idle.busy_percent}); tasks wait" if turned
                     else "machine idle again: tasks run")

    def load(self) -> float:
        """Queued plus running tasks per offered core."""
        return (self.queue.stats().depth + self._running) / self.cores

    # ------------------------------------------------------------------ worker side

    def admit(self, task: Task, *, origin: str, envelope: Envelope | None = None, claimed_id: str | None = None) -> str:
        """Admit a task for this node to run; its result goes back to ``origin``.

        The kernel's admission (:func:`gaia_core.admission.check`: signature, id, module hash, sizes,
        limits, deadline, the ``gaia_validate_task`` hooks) runs here, before the queue sees the task,
        so a queue plugin that skips it cannot let a bad task in. ``claimed_id`` is the id the sender
        named, when the message carried one.
        """
        try:
            if self._stopping.is_set():
                raise RejectedError("queue_full", "this node is stopping", hint="send the task to another node")
            if self._paused.is_set() and origin != self.node_id:  # its own tasks queue and wait for `gaia resume`
                raise RejectedError("queue_full", "this node is paused by its operator",
                                    hint="send the task to another node", retry_after=PAUSED_RETRY_S)
            if self.idle.busy() and origin != self.node_id:  # its own tasks queue and wait for an idle machine
                raise RejectedError("queue_full", "this node runs only when its machine is idle, and it is busy",
                                    hint="send the task to another node", retry_after=HOLD_S)
            admission.check(task, self.context, envelope=envelope, claimed_id=claimed_id)
        except RejectedError as exc:
            self.store.bump({"rejected": 1, f"rejected.{exc.reason}": 1})
            raise
        with self._lock:  # a task's id names its submitter, so a copy already here has the same origin
            fresh = task.id not in self._admitted
            if fresh:
                self._admitted[task.id] = (origin, task)
        try:
            return self.queue.admit(task, envelope=envelope)
        except Exception as exc:  # a refusal, or a queue plugin's bug: the task is not queued either way
            if fresh:  # a copy admitted earlier keeps its origin
                with self._lock:
                    self._admitted.pop(task.id, None)
            if isinstance(exc, RejectedError):
                self.store.bump({"rejected": 1, f"rejected.{exc.reason}": 1})
            raise

    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            if (self._paused.is_set() or self.idle.busy()) and not self._stopping.is_set():  # tasks wait
                self._stop.wait(0.25)
                continue
            task = self.queue.next(timeout=0.25)
            if task is None:
                if self._stopping.is_set():  # the queue is closed: nothing more will come
                    return
                continue
            with self._lock:
                self._running += 1
            try:
                self._execute(task)
            except Exception:  # keep the worker alive whatever a plugin raised
                log.exception("task handling failed", extra={"task_id": task.id})
            finally:
                with self._lock:
                    self._running -= 1

    def _execute(self, task: Task) -> None:
        runner = self.runners[task.kind]
        # a task's blobs are fetched before it runs (docs/blobs.md); an error result when they cannot be had
        unfetched = self.blobs.prepare(task, self._origin(task.id)) if task.blobs else None
        with self._meter.meter() if self._meter is not None else contextlib.nullcontext([]) as cost:
            try:
                result = unfetched or runner.run(task)
            except Exception as exc:  # a runner must not raise; contain it if it does
                log.exception("runner raised", extra={"task_id": task.id})
                result = TaskResult(task_id=task.id, status=Status.ERROR, message=f"runner failed: {exc}")
        if task.blobs:
            self.blobs.release(task)  # privacy: fetched blobs go once no running task names them
        if cost:  # energy over the run itself, from the provider's meter (RAPL when readable, else estimated)
            result = attrs.evolve(result, energy_j=cost[0].energy_j, energy_source=cost[0].energy_source)
        if result.node_id != self.node_id:
            result = attrs.evolve(result, node_id=self.node_id)
        proof = self.prover.prove(task, result)
        self.store.bump({f"tasks.{result.status.value}": 1, "fuel": result.fuel_used, "cpu_s": result.cpu_s})
        self._finish(result, proof)

    def _origin(self, task_id: str) -> str:
        """The node an admitted task's result goes back to."""
        with self._lock:
            return self._admitted.get(task_id, (self.node_id, None))[0]

    def _finish(self, result: TaskResult, proof: Proof | None) -> None:
        """Send ``result`` to its submitter and tell the plugins (``gaia_task_finished``), once per admission."""
        self.queue.done(result.task_id, result.status)
        with self._lock:
            origin, task = self._admitted.pop(result.task_id, (None, None))
        if origin == self.node_id:
            self.jobs.on_results(self.node_id, [(result, proof)])
        elif origin is not None:
            self.outbox.put(origin, result, proof)
        if task is not None:
            try:
                self.hook.gaia_task_finished(task=task.without_module(), result=result, context=self.context)
            except Exception:  # a plugin's listener must not lose the node a worker
                log.exception("gaia_task_finished hook failed", extra={"task_id": result.task_id})

    def _housekeeping_loop(self) -> None:
        last_announce = 0.0
        while not self._stop.wait(0.2):
            try:
                self.store.flush()
                self.store.scrub()
                self.blobs.sweep(self.jobs.jobstore.released)  # privacy: blobs only released jobs named
                if self.benchmarks:
                    self._last_sample = self.benchmarks[0].sample()
                    self._watch_idle(self._last_sample)
                self._take_dropped()
                if time.monotonic() - last_announce > self.context.config.network.heartbeat_s:
                    last_announce = time.monotonic()
                    self.announce()
            except Exception:  # log it and keep housekeeping
                log.exception("housekeeping round failed")

    def _take_dropped(self) -> None:
        """Finish the admitted tasks the queue will not run (expired, cancelled).

        Once the node is stopping, a cancelled task is one the closing queue dropped: its result says
        so (:data:`QUEUE_CLOSED`) and goes back to a remote submitter; this node's own such task gets
        no result at all, so it stays pending in state.db and runs after the next start.
        """
        kept = 0
        for result in self.queue.take_dropped():
            if self._stopping.is_set() and result.status is Status.CANCELLED:
                with self._lock:
                    origin, _ = self._admitted.get(result.task_id, (None, None))
                    if origin == self.node_id:
                        del self._admitted[result.task_id]
                        kept += 1
                        continue
                result = attrs.evolve(result, message=QUEUE_CLOSED)
            self.store.bump({f"tasks.{result.status.value}": 1})
            self._finish(attrs.evolve(result, node_id=self.node_id), None)
        if kept:
            log.info("own tasks left pending for the next start", extra={"tasks": kept})

    def announce(self) -> dict[str, Any]:
        """Refresh this node's record (load, time) and announce it to every peer."""
        if self.record is None:
            raise NodeError("this node has not started yet", hint="wait for `gaia node` to print its address")
        self.record = attrs.evolve(self.record, load=self.load(), updated_at=time.time())
        self.transport.announce(RECORD, codec.encode(self.record))
        return codec.unstructure(self.record)

    def _deliver_loop(self) -> None:
        """Hand each submitter's waiting results to a delivery worker, one delivery per submitter at a
        time, so a submitter that is slow or unreachable (backing off) never delays the others."""
        while not self._stop.is_set():
            for submitter in self.outbox.ready():
                self._send_results(submitter)
            with self.outbox.changed:
                self.outbox.changed.wait(0.2)

    def _send_results(self, submitter: str) -> concurrent.futures.Future[bool]:
        """Start delivering the next batch of ``submitter``'s results on a delivery worker."""
        return self._on_delivery_worker(self._deliver, submitter, self.outbox.take(submitter, DELIVERY_BATCH))

    def _on_delivery_worker(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args)`` on a delivery worker; :meth:`stop` waits for it (RuntimeError once stopped)."""
        future = self._deliveries.submit(fn, *args)
        self._in_flight.add(future)
        future.add_done_callback(self._in_flight.discard)
        return future

    def _deliver(self, origin: str, items: list[Pending]) -> bool:
        """Send one batch of results to ``origin``; on failure they go back to the outbox, which backs off."""
        body = seal_results(self.identity, [(codec.encode(p.result), codec.encode(p.proof) if p.proof else None)
                                            for p in items])  # one signature for the batch
        self.jobs.earnings.delivering(origin, [p.result for p in items])  # durable before the submitter can grant
        try:
            reply = self.transport.request(origin, RESULTS, body, timeout=10.0)
        except GaiaError as exc:
            wait = self.outbox.failed(origin, items)
            log.info("result delivery failed; will retry", extra={
                "submitter": origin[:16], "results": len(items), "retry_in_s": round(wait, 1), "error": str(exc)})
            return False
        except Exception:  # a transport bug: keep the results for a later try
            self.outbox.failed(origin, items)
            log.exception("result delivery failed", extra={"submitter": origin[:16]})
            return False
        self.outbox.delivered(origin)
        try:
            self.jobs.record_earned(origin, [p.result for p in items], reply)
        except Exception:  # e.g. a submitter's malformed acknowledgement: the results were delivered
            log.exception("cannot record what a submitter acknowledged", extra={"submitter": origin[:16]})
        self._ask_credits(origin)
        return True

    def _ask_credits(self, submitter: str) -> None:
        """Ask ``submitter``, reachable now, the credit of deliveries it never settled with this node (it
        gave up sending them while this node was away; see :meth:`Earnings.query`)."""
        query = None if self._stopping.is_set() else self.jobs.earnings.query(submitter)  # not in the drain time
        if query is None:
            return
        try:
            reply = self.transport.request(submitter, CREDITS, codec.encode(query), timeout=10.0)
            taken = self.jobs.earnings.answered(submitter, query, reply)
        except GaiaError as exc:
            log.info("credit query failed; will ask again later", extra={"submitter": submitter[:16],
                                                                          "error": str(exc)})
            return
        if taken:
            log.info("credits taken that a submitter had stopped sending", extra={"submitter": submitter[:16],
                                                                                   "credits": taken})

    def _flush_outbox(self, deadline: float) -> None:
        """Before stopping: try every submitter with waiting results, back-off or not, until ``deadline``."""
        failed: set[str] = set()  # one failed try is enough: the node is stopping
        while time.monotonic() < deadline:
            batch = [s for s in self.outbox.ready(ignore_backoff=True) if s not in failed]
            if not batch:
                return
            sent = {submitter: self._send_results(submitter) for submitter in batch}
            concurrent.futures.wait(sent.values(), timeout=max(0.0, deadline - time.monotonic()))
            failed.update(s for s, future in sent.items() if not future.done() or not future.result())

    # ------------------------------------------------------------------ MessageHandler

    def on_request(self, envelope: Envelope) -> bytes:
        """Answer a verified request from a peer."""
        if envelope.kind == OFFER:
            return codec.encode(OfferReply(self._on_offer(envelope)))
        if envelope.kind == RESULTS:
            items, seals = [], []
            for (result_frame, proof_frame), item_seal in open_sealed_results(envelope):
                result = codec.decode(result_frame, TaskResult)
                proof = codec.decode(proof_frame, Proof) if proof_frame else None
                items.append((result, proof))
                seals.append(codec.encode(item_seal) if proof is not None else None)  # kept with the proof
            return codec.encode(self.jobs.on_results(envelope.sender, items, seals))
        if envelope.kind == SETTLED:
            return self.jobs.on_settlement(envelope.sender, envelope.body)
        if envelope.kind == CREDITS:
            return self.jobs.unsettled.answer(envelope.sender, envelope.body)
        if envelope.kind == CHUNKS:
            return self.blobs.serve(envelope)
        raise NodeError(f"unknown request kind {envelope.kind!r}")

    def _on_offer(self, envelope: Envelope) -> list[OfferAnswer]:
        answers = []
        given: dict[str, OfferAnswer] = {}  # an offer may carry identical tasks: admit once, answer each
        for frame in _frames(envelope):
            try:
                task = codec.decode(frame, Task)
            except GaiaError as exc:  # e.g. a NaN deadline: refused, and counted like any admission refusal
                self.store.bump({"rejected": 1, "rejected.invalid": 1})
                answers.append(OfferAnswer("", False, "invalid", str(exc)[:4096]))
                continue
            if task.id not in given:
                try:
                    self.admit(task, origin=envelope.sender, envelope=envelope)
                    given[task.id] = OfferAnswer(task.id, True)
                except RejectedError as exc:
                    given[task.id] = OfferAnswer(task.id, False, exc.reason[:64], str(exc)[:4096], exc.retry_after)
            answers.append(given[task.id])
        return answers

    def _sent_blob(self, peer: str, blob: str) -> bool:
        """True while a task naming ``blob`` that this node submitted is out at ``peer``: it may read the blob."""
        dispatcher = self.jobs.dispatcher
        with dispatcher.lock:
            return any(blob in slot.task.blobs and (peer in slot.sent or peer in slot.overdue)
                       for slot in dispatcher.slots.values())

    def _blob_liar(self, peer: str) -> None:
        """``peer`` sent blob data that does not verify: back it off and check its results at the full rate."""
        self.jobs.dispatcher.strike(peer)
        self.jobs.spot.trust.forget(peer)

    def on_announce(self, envelope: Envelope) -> None:
        """Keep the latest NodeRecord of every peer (for scheduling), up to MAX_PEER_RECORDS of them."""
        if envelope.kind == RECORD:
            record = codec.decode(envelope.body, NodeRecord, max_bytes=MAX_RECORD_BYTES)
            if record.node_id != envelope.sender:
                return
            if self._keep_record(record):
                self.jobs.on_record(record)

    def _keep_record(self, record: NodeRecord, *, up: bool | None = None) -> bool:
        """Keep a peer's ``record`` unless the one held is as new (``updated_at``): a record delivered
        late or replayed never rolls a peer back; False when it was not kept.

        For MAX_PEER_RECORDS peers at most. Past that, a peer that is up (``up``; asked of the
        transport when None) takes the place of the oldest one that is not, and any other is refused
        (RejectedError), so identities that announced once and left cannot lock the peers this node
        is connected to out."""
        held = self.peer_records.get(record.node_id)
        if held is not None and record.updated_at <= held.updated_at:
            return False
        if record.node_id not in self.peer_records and len(self.peer_records) >= MAX_PEER_RECORDS:
            connected = {p.node_id for p in self.transport.peers() if p.state == "up"}
            with self._lock:
                gone = next((p for p in self.peer_records if p not in connected), None)
                if not (record.node_id in connected if up is None else up) or gone is None:
                    raise RejectedError("records_full",
                                        f"this node keeps the records of {MAX_PEER_RECORDS} peers already")
                del self.peer_records[gone]
                self.first_seen.pop(gone, None)
            self.jobs.forget_peer(gone)
        self.peer_records[record.node_id] = record
        self.first_seen.setdefault(record.node_id, time.time())
        return True

    def on_peer(self, peer: PeerInfo) -> None:
        """A peer went up or down; re-send what it held when it went down."""
        log.info("peer state", extra={"peer": peer.node_id[:16], "state": peer.state})
        if peer.record is not None:
            with contextlib.suppress(RejectedError):  # kept for a peer that is up, when there is room
                self._keep_record(peer.record, up=peer.state == "up")
        if peer.state == "down":
            self.jobs.on_peer_down(peer.node_id)
        elif peer.state == "up":  # a submitter back: ask it for credits it gave up telling this node
            with contextlib.suppress(RuntimeError):  # the node is stopping
                self._on_delivery_worker(self._ask_credits, peer.node_id)

    # ------------------------------------------------------------------ verification

    def verifier(self, scheme: str) -> Any:
        """The prover that verifies proofs of ``scheme`` (built on first use)."""
        if scheme not in self._verifiers:
            self._verifiers[scheme] = self.plugins.prover(scheme).factory(self.context)
        return self._verifiers[scheme]

    # ------------------------------------------------------------------ control socket

    def status(self) -> dict[str, Any]:
        """What ``gaia status`` shows."""
        peers = self.transport.peers()
        stats = self.store.stats()
        return {
            "node_id": self.node_id, "name": self.context.config.node.name, "version": __version__,
            "address": self.address, "uptime_s": round(time.time() - self.started_at, 1), "cores": self.cores,
            "paused": self._paused.is_set(),
            "busy": {"waiting": self.idle.busy(), "others_percent": self.idle.others_percent,
                     "busy_percent": self.idle.busy_percent},
            "peers": {"up": sum(p.state == "up" for p in peers), "total": len(peers)},
            "refused": self.refused(),
            "admission": {k.removeprefix("rejected."): v for k, v in stats.items() if k.startswith("rejected.")},
            "queue": attrs.asdict(self.queue.stats()), "running": self._running,
            "tasks": {k.removeprefix("tasks."): v for k, v in stats.items() if k.startswith("tasks.")},
            "verification": {k: v for k, v in stats.items() if k.startswith("verdicts.") or k == "spot_checks"},
            "outbox": self.outbox.stats(),
            "jobs": self.jobs.summary(), "benchmark": self.report.summary(), "rewards": self.ledger.summary(),
            "plugins": list(self.record.plugins) if self.record else [],
        }

    def peers(self) -> list[dict[str, Any]]:
        """What ``gaia peers`` shows."""
        rows = []
        for peer in self.transport.peers():
            record = self.peer_records.get(peer.node_id) or peer.record
            rows.append({"node_id": peer.node_id, "address": peer.address, "state": peer.state,
                         "last_seen": peer.last_seen, "rtt_ms": None if peer.rtt_s is None else peer.rtt_s * 1e3,
                         "name": record.name if record else "", "load": record.load if record else None,
                         "record_at": record.updated_at if record else None,
                         "benchmark": dict(record.benchmark) if record else {},
                         "refused": self.gate.refusals.of(peer.node_id), "trust": self.trust_of(peer.node_id)})
        return rows

    def trust_of(self, peer: str) -> dict[str, Any]:
        """What this node's spot-check policy holds of ``peer``: its streak of consecutive valid results, whether
        that makes it trusted, and the fraction of its results checked now (docs/verification.md)."""
        spot = self.jobs.spot
        return {"streak": spot.trust.streak(peer), "trusted": spot.trust.trusted(peer),
                "check_rate": spot.rate_for(peer)}

    def refused(self) -> dict[str, dict[str, int]]:
        """Messages refused, by reason: by the kernel (authentication, records) and by the transport (its bounds)."""
        stats = getattr(self.transport, "stats", None)  # optional for a transport: not in its protocol
        return {"kernel": self.gate.stats(), "transport": dict(stats().get("rejected", {})) if stats else {}}

    def sample(self) -> dict[str, Any]:
        """One resource sample plus queue and task counters, for ``gaia monitor``."""
        sample = self._last_sample
        return {"sample": codec.unstructure(sample) if sample else None,
                "queue": attrs.asdict(self.queue.stats()), "running": self._running,
                "peers": sum(p.state == "up" for p in self.transport.peers())}

    def _control_methods(self) -> dict[str, Any]:
        def stop() -> bool:
            self.request_stop()
            return True

        return {
            "status": self.status, "peers": self.peers, "sample": self.sample,
            "announce": self.announce,
            "rewards": self.ledger.summary,
            "submit": self.jobs.submit_frames, "job": self.jobs.job_status, "wait": self.jobs.wait_job,
            "results": self.jobs.job_results,
            "cancel": self.jobs.cancel, "retry": self.jobs.retry,
            "jobs": self.jobs.list_jobs,
            "pause": lambda: self.pause(True), "resume": lambda: self.pause(False),
            "stop": stop,
        }


def _frames(envelope: Envelope) -> list[Any]:
    """The list of byte frames in a peer's request body; ValidationError otherwise."""
    try:
        frames = msgpack.unpackb(envelope.body)
    except (ValueError, TypeError, msgpack.UnpackException):  # msgpack's errors for bad bytes
        frames = None
    if not isinstance(frames, list) or not all(isinstance(item, bytes) for item in frames):
        raise ValidationError(f"malformed {envelope.kind} body from {envelope.sender[:12]}: not a msgpack list of "
                              "frames", hint="the peer runs an incompatible version")
    return frames
