"""Defects found by an adversarial review of the durable jobs (issue #13) and of credit and admission
(issue #12), each tested at the join where it was found.

The dispatcher's rules run in milliseconds on the injected clock of tests/test_dispatch.py; the joins
between nodes run on real in-process nodes (real sockets on 127.0.0.1, real SQLite, real signatures).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import IdleQueue, build_node, load_plugins, make_home, running, wait_for
from nodes import echo_tasks
from test_dispatch import CAP, Harness
from test_settlement import HONEST, LIAR, TASK, granted, runner, settlement, worker_result  # noqa: F401 (fixtures)

from gaia_core import codec, hookimpl, node as node_mod
from gaia_core.envelope import seal
from gaia_core.errors import NodeError, RejectedError
from gaia_core.identity import Identity
from gaia_core.inbound import RECORD
from gaia_core.jobs.dispatcher import MAX_ATTEMPTS
from gaia_core.jobs.earnings import Earnings
from gaia_core.jobs.messages import RESULTS, ResultAck, ResultAcks
from gaia_core.jobs.settlement import Settlement
from gaia_core.model import BenchmarkReport, Envelope, NodeRecord, ResourceSample, Status, Task, TaskResult, Verdict
from gaia_core.node import MAX_PEER_RECORDS, Node
from gaia_core.rewards import Credit, Ledger
from gaia_core.roles import BenchmarkSpec, NodeContext, QueueSpec
from gaia_core.store import Store

pytest.importorskip("gaia_runner_wasm.workloads")


# ---------------------------------------------------------------------- the dispatcher, in milliseconds


def test_copies_late_together_when_the_first_one_fails_the_task_end_it_once() -> None:
    """Every copy of a task is late in one round and the first one used its last attempt: the task fails
    once, and the round goes on (it raised KeyError on the second copy, released by the failure)."""
    h = Harness()
    (slot,) = h.job(1, redundancy=MAX_ATTEMPTS)
    peers = [c * 64 for c in "0123456789"[:MAX_ATTEMPTS]]
    assert sum(len(s) for s in h.round(*peers).values()) == MAX_ATTEMPTS
    h.clock.now += CAP + 1
    late = h.dispatcher.late()
    assert {peer for peer, _ in late} == set(peers)
    assert [(s.idx, s.state) for s, _ in h.failed] == [(0, "failed")]
    assert all(h.dispatcher.peers[p].strikes == 1 for p in peers)  # every late node is struck, not only the first
    assert h.dispatcher.inflight == {p: 0 for p in peers}


# ---------------------------------------------------------------------- settlement


def test_a_result_whose_spot_check_ends_after_a_re_sent_copy_finished_the_task_is_still_credited(
        settlement: Settlement, runner: object) -> None:  # noqa: F811 (the fixtures of test_settlement)
    """A late node's answer (still counting) was picked for a spot-check and acknowledged ``pending``; the
    copy re-sent elsewhere finished the task meanwhile. When the check passed, deciding the task again raised
    KeyError inside the spot-check thread (no verdict for the other node), silently: the late node was never
    credited nor told. Each result of a one-replica task is credited on its own verdict, once."""
    first, _ = worker_result(runner, HONEST)
    settlement.decide(TASK, 1, {HONEST.node_id: first}, HONEST.node_id, Verdict("valid", "proof", TASK.id), {})
    late, _ = worker_result(runner, LIAR)
    checked = Verdict("valid", "matches local re-execution", TASK.id, "spot-check")
    outcome = settlement.decide(TASK, 1, {HONEST.node_id: first, LIAR.node_id: late}, LIAR.node_id, checked, {})
    assert set(outcome.credits) == {LIAR.node_id} and outcome.credits[LIAR.node_id].total > 0
    rows = granted(settlement)
    assert rows[LIAR.node_id][1] == rows[HONEST.node_id][1] == "valid"


def _ledger(node: Node, role: str) -> dict[str, tuple[float, str]]:
    return {r["task_id"]: (r["credit"], r["verdict"])
            for r in node.store.rows("SELECT task_id, credit, verdict FROM ledger WHERE role = ?", (role,))}


def test_a_worker_whose_acknowledgement_was_lost_learns_its_credit_when_it_delivers_again(tmp_path: Path) -> None:
    """The submitter writes the credit and reports it in its acknowledgement; when that reply is lost (a
    timeout, a dropped connection), the worker delivers again and was answered "no such task outstanding"
    without the credit: the submitter's ledger granted it, the worker's never earned it. A re-delivery of a
    task already credited to that worker is now answered with the credit written for it."""
    worker = build_node(make_home(tmp_path, "worker"), load_plugins())
    with running(worker, drain_s=1.0):
        submitter = build_node(make_home(tmp_path, "submitter", {"network": {"bootstrap": [worker.address]}}),
                               load_plugins())
        with running(submitter, drain_s=1.0):
            wait_for(lambda: worker.node_id in submitter.peer_records, timeout=30, what="the peers to meet")
            request, lost = worker.transport.request, []

            def lossy(peer: str, kind: str, body: bytes, timeout: float = 10.0) -> bytes:
                reply = request(peer, kind, body, timeout=timeout)
                if kind == RESULTS and not lost:  # the submitter took the results; their acknowledgement is lost
                    lost.append(reply)
                    raise NodeError("no reply in time (the test dropped it)")
                return reply

            worker.transport.request = lossy
            tasks = echo_tasks([f"lost ack {i}".encode() for i in range(3)], submitter.node_id)
            job = submitter.jobs.submit(tasks, to=worker.node_id)
            assert submitter.jobs.wait_job(job, timeout=60)["tasks"] == {"done": 3}
            wait_for(lambda: lost, timeout=10, what="the first acknowledgement to be dropped")  # after the job ended
            granted = wait_for(lambda: _ledger(submitter, "granted"), timeout=10, what="the submitter's credit")
            wait_for(lambda: _ledger(worker, "earned") == granted, timeout=10,
                     what=f"the worker to earn what was granted ({len(granted)} credits)")
            assert _ledger(worker, "awaiting") == {}


def test_an_acknowledgement_cannot_write_credit_for_a_task_the_worker_did_not_deliver(tmp_path: Path) -> None:
    """A submitter's acknowledgement of one delivered result carried a credit naming any other task id,
    and the worker wrote it as earned: a peer wrote rows of its choosing into the worker's ledger."""
    store = Store(tmp_path / "state.db")
    try:
        earnings, submitter = Earnings(Ledger(store), store), "5" * 64
        delivered = TaskResult(task_id="a" * 64, status=Status.OK)
        earnings.delivering(submitter, [delivered])
        forged = ResultAck(delivered.task_id, "valid", "", Credit("b" * 64, "valid", 1e12))
        earnings.acknowledged(submitter, [delivered], codec.encode(ResultAcks([forged])))
        rows = {(r["task_id"], r["role"]) for r in store.rows("SELECT task_id, role FROM ledger")}
    finally:
        store.close()
    assert rows == {(delivered.task_id, "awaiting")}


# ---------------------------------------------------------------------- what a peer's refusal can do


class Refuser(IdleQueue):
    """A worker's queue that refuses every task with the reason it is given (what a lying peer answers)."""

    reason = "bad_id"

    def __init__(self, context: NodeContext) -> None:
        super().__init__(context)
        self.offered = 0

    def admit(self, task: Task, *, envelope: Envelope | None = None) -> str:
        self.offered += 1
        raise RejectedError(self.reason, f"refused with {self.reason!r} by a lying peer")



class RefuserPlugin:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    @hookimpl
    def gaia_queues(self) -> Iterator[QueueSpec]:
        reason = self.reason
        yield QueueSpec(name="refuser", factory=lambda context: type("Lying", (Refuser,), {"reason": reason})(context))


def _with_liar(tmp_path: Path, reason: str, *, submitter_runs: bool) -> tuple[Node, Node]:
    """A started submitter (running tasks itself or not) and a started peer whose every answer is ``reason``."""
    without = () if submitter_runs else ("gaia-runner-wasm",)
    submitter = build_node(make_home(tmp_path, "submitter"), load_plugins(without=without))
    submitter.start()
    liar = build_node(make_home(tmp_path, "liar", {"network": {"bootstrap": [submitter.address]}}),
                      load_plugins((RefuserPlugin(reason), "refuser"), without=("gaia-queue-memory",)))
    liar.start()
    return submitter, liar


@pytest.mark.parametrize("reason", ["bad_id", "expired"])
def test_a_peer_cannot_fail_a_task_by_calling_it_wrong(tmp_path: Path, reason: str) -> None:
    """A peer answering an offer ``bad_id`` or ``expired`` (the task's own faults) ended the task at once,
    so one liar failed most of a job the submitter could run itself. The submitter checks both itself:
    its task's id is its content id, and the deadline is its own clock's; the liar is not offered it again."""
    submitter, liar = _with_liar(tmp_path, reason, submitter_runs=True)
    try:
        wait_for(lambda: liar.node_id in submitter.peer_records, timeout=30, what="the liar to be known")
        job = submitter.jobs.submit(echo_tasks([f"lie {i}".encode() for i in range(16)], submitter.node_id))
        status = submitter.jobs.wait_job(job, timeout=30)
        assert liar.queue.offered >= 1, "the liar was never offered a task: the test proves nothing"
    finally:
        liar.stop(drain_s=0.2)
        submitter.stop(drain_s=1.0)
    assert status["tasks"] == {"done": 16}, status


def test_a_peer_cannot_have_a_task_offered_again_without_end(tmp_path: Path) -> None:
    """A peer answering ``retry`` (a reason the submitter uses itself, exempt from the attempt limit) had
    its tasks offered to it again and again, without end. The task now fails in bounded time, with its reason."""
    submitter, liar = _with_liar(tmp_path, "retry", submitter_runs=False)
    try:
        wait_for(lambda: liar.node_id in submitter.peer_records, timeout=30, what="the liar to be known")
        job = submitter.jobs.submit(echo_tasks([b"again"], submitter.node_id))
        status = submitter.jobs.wait_job(job, timeout=10)
        offered = liar.queue.offered
    finally:
        liar.stop(drain_s=0.2)
        submitter.stop(drain_s=1.0)
    assert status["tasks"] == {"failed": 1}, (status, offered)
    assert offered <= MAX_ATTEMPTS


class BrokenQueue(Refuser):
    """A queue plugin with a bug: admit raises something other than a refusal."""

    def admit(self, task: Task, *, envelope: Envelope | None = None) -> str:
        self.offered += 1
        raise RuntimeError("queue plugin bug")


class BrokenQueuePlugin:
    @hookimpl
    def gaia_queues(self) -> Iterator[QueueSpec]:
        yield QueueSpec(name="broken", factory=BrokenQueue)


def test_a_task_this_node_cannot_queue_for_itself_ends_with_the_reason_instead_of_waiting_to_be_late(
        tmp_path: Path) -> None:
    """When the node's own queue raised on a task the node offered itself, the exception vanished in the offer
    thread and the task waited, held by this node, until it was late (2 x timeout + 10 s, per attempt). It is
    now refused at once with the error, re-sent, and after its attempts fails naming it."""
    node = build_node(make_home(tmp_path, "broken"), load_plugins((BrokenQueuePlugin(), "broken-queue"),
                                                                  without=("gaia-queue-memory",)))
    with running(node, drain_s=0.5):
        job = node.jobs.submit(echo_tasks([b"never queued"], node.node_id))
        status = node.jobs.wait_job(job, timeout=15)
        (row,) = node.jobs.job_results(job)
        admitted = dict(node._admitted)
    assert status["tasks"] == {"failed": 1}, status
    assert admitted == {}  # nothing kept for a task the queue never took
    assert "RuntimeError: queue plugin bug" in row["reason"]


# ---------------------------------------------------------------------- what a node keeps


def test_a_finished_job_leaves_nothing_in_the_dispatcher(tmp_path: Path) -> None:
    """The dispatcher kept the observed times of every job it ever ran (one entry per job, for good)."""
    node = build_node(make_home(tmp_path, "alone"), load_plugins())
    with running(node, drain_s=1.0):
        for n in range(3):
            job = node.jobs.submit(echo_tasks([f"job {n} task {i}".encode() for i in range(2)], node.node_id))
            assert node.jobs.wait_job(job, timeout=30)["tasks"] == {"done": 2}
        assert dict(node.jobs.dispatcher.jobs) == {}
        assert node.jobs.dispatcher.slots == {} and node.jobs.dispatcher.by_task == {}


def test_identities_that_announced_and_left_cannot_lock_a_connected_peer_out(tmp_path: Path) -> None:
    """Identities that announced once and left fill the node's peer records (MAX_PEER_RECORDS); a peer that
    connected later had its record kept anyway, from the transport's ``on_peer``, past the bound (one more
    for every new identity that connects, for good). Both ways in now share the bound: a peer that is up
    takes the place of the oldest record of one that is not, and announcements alone are still refused."""
    node = build_node(make_home(tmp_path, "full"), load_plugins())
    with running(node, drain_s=0.5):
        for _ in range(MAX_PEER_RECORDS):
            gone = Identity.generate()
            node.on_announce(seal(gone, RECORD, codec.encode(NodeRecord(node_id=gone.node_id))))
        stranger = Identity.generate()  # announced, never connected: still refused past the bound
        with pytest.raises(RejectedError, match="records"):
            node.on_announce(seal(stranger, RECORD, codec.encode(NodeRecord(node_id=stranger.node_id))))
        peer = build_node(make_home(tmp_path, "peer", {"network": {"bootstrap": [node.address]}}), load_plugins())
        with running(peer, drain_s=0.5):
            first = wait_for(lambda: node.peer_records.get(peer.node_id), timeout=30, what="the peer's record")
            wait_for(lambda: node.peer_records[peer.node_id].updated_at > first.updated_at, timeout=10,
                     what="a later announcement of the peer to be taken")
            assert node.gate.refusals.of(peer.node_id) == {}
        assert len(node.peer_records) == MAX_PEER_RECORDS and len(node.first_seen) <= MAX_PEER_RECORDS


def test_what_the_submitter_keeps_of_a_peer_leaves_with_its_record(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatcher's, the job manager's and the spot-check policy's bookkeeping of a peer (speed, strikes,
    tasks in flight, the modules it holds, its trust streak) was kept for every identity ever given a task,
    for good: identities that connect, run a task and leave grew it without bound. It now leaves with the
    peer's record, when that record makes room for a peer that is up."""
    monkeypatch.setattr(node_mod, "MAX_PEER_RECORDS", 1)
    submitter = build_node(make_home(tmp_path, "submitter"), load_plugins(without=("gaia-runner-wasm",)))
    seen = []
    with running(submitter, drain_s=0.5):
        for i in range(2):
            worker = build_node(make_home(tmp_path, f"worker{i}", {"network": {"bootstrap": [submitter.address]}}),
                                load_plugins())
            seen.append(worker.node_id)
            with running(worker, drain_s=0.5):
                wait_for(lambda w=worker: w.node_id in submitter.peer_records, timeout=30, what="the peer's record")
                job = submitter.jobs.submit(echo_tasks([f"visit {i}".encode()], submitter.node_id), to=worker.node_id)
                assert submitter.jobs.wait_job(job, timeout=30)["tasks"] == {"done": 1}
            wait_for(lambda w=worker: not [p for p in submitter.transport.peers() if p.node_id == w.node_id
                                           and p.state == "up"], timeout=30, what="the peer to be marked down")
        kept = set(submitter.peer_records)
        jobs = submitter.jobs
        remembered = (set(jobs.dispatcher.peers) | set(jobs.dispatcher.inflight) | set(jobs.peer_modules)
                      | set(jobs.spot.trust._streaks))
    assert kept == {seen[1]} and seen[0] not in remembered, (seen, kept, remembered)


# ---------------------------------------------------------------------- stopping


class HeldBenchmark:
    """A benchmark whose measurement waits until the test lets it go (a slow start-up)."""

    entered = threading.Event()
    release = threading.Event()

    def __init__(self, context: NodeContext) -> None:
        pass

    def measure(self, *, quick: bool = False) -> BenchmarkReport:
        HeldBenchmark.entered.set()
        HeldBenchmark.release.wait(30)
        return BenchmarkReport()

    def sample(self) -> ResourceSample:
        return ResourceSample()


class HeldBenchmarkPlugin:
    @hookimpl
    def gaia_benchmarks(self) -> Iterator[BenchmarkSpec]:
        yield BenchmarkSpec(name="held", factory=HeldBenchmark)


def test_a_stop_asked_while_the_node_starts_stops_it(tmp_path: Path) -> None:
    """SIGTERM (or ``gaia stop``) while the node was still starting raised in the stop thread (the
    dispatcher's thread was not started yet) after the node had marked itself stopping: the node then
    ran on refusing every task, and no later stop could end it. It now stops once it has started."""
    HeldBenchmark.entered.clear()
    HeldBenchmark.release.clear()
    node = build_node(make_home(tmp_path, "slow-start"), load_plugins((HeldBenchmarkPlugin(), "held-benchmark")))
    starter = threading.Thread(target=node.start, name="test-start", daemon=True)
    starter.start()
    try:
        assert HeldBenchmark.entered.wait(30), "the node never measured"
        node.request_stop()  # what the SIGTERM handler does
        time.sleep(0.2)  # the stop thread runs while the node is still starting
    finally:
        HeldBenchmark.release.set()
        starter.join(30)
    assert node.wait(30), "the node never stopped"
