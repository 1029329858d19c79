"""The dispatcher's rules in milliseconds: an injected clock and send, real tasks, no sockets and no sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gaia_core.jobs.dispatcher import FLOOR_S, MAX_ATTEMPTS, MIN_OBSERVED, STRANDED_S, Candidate, Dispatcher, Slot
from gaia_core.model import Limits, Task

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
TIMEOUT_S = 30.0
CAP = 2 * TIMEOUT_S + 10.0  # how long a node may hold a task before anything was observed


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A dispatcher whose offers and failures are recorded instead of sent."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.sent: list[tuple[str, list[Slot]]] = []
        self.failed: list[tuple[Slot, str]] = []
        self.dispatcher = Dispatcher(send=lambda peer, slots: self.sent.append((peer, slots)),
                                     fail=self._fail, clock=self.clock)

    def _fail(self, slot: Slot, reason: str) -> None:
        slot.state = "failed"
        self.failed.append((slot, reason))
        self.dispatcher.remove(slot)

    def job(self, count: int, *, job: str = "job1", redundancy: int = 1, to: str | None = None) -> list[Slot]:
        slots = [Slot(job, i, Task(module_id="e" * 64, input=f"{job} {i}".encode(),
                                   limits=Limits(timeout_s=TIMEOUT_S)), redundancy, to, wanted=redundancy)
                 for i in range(count)]
        for slot in slots:
            self.dispatcher.add(slot)
        return slots

    def round(self, *peers: str, cores: int = 1, prior: dict[str, float] | None = None) -> dict[str, list[Slot]]:
        """One dispatch round to ``peers``; returns what each was offered in it."""
        self.sent.clear()
        self.dispatcher.dispatch({p: Candidate(p, cores, frozenset({"wasm"}), 0.0, (prior or {}).get(p, 1.0))
                                  for p in peers})
        out: dict[str, list[Slot]] = {}
        for peer, slots in self.sent:
            out.setdefault(peer, []).extend(slots)
        return out

    def answer(self, peer: str, slots: list[Slot], after: float) -> None:
        """``peer`` returns ``slots`` ``after`` seconds from now."""
        self.clock.now += after
        for slot in slots:
            assert self.dispatcher.answered(peer, slot)
            self.dispatcher.verified(peer, slot, run_s=after)


@pytest.fixture
def h() -> Iterator[Harness]:
    yield Harness()


def test_a_round_fills_each_nodes_window_and_never_gives_one_node_two_copies(h: Harness) -> None:
    h.job(3, redundancy=2)
    offered = h.round(A, B)
    assert {p: len(s) for p, s in offered.items()} == {A: 3, B: 3}
    assert all(len(slot.sent) == 2 for slot in h.dispatcher.slots.values())
    assert h.round(A, B) == {}  # every copy is out


def test_a_full_queue_backs_the_node_off_until_its_retry_after(h: Harness) -> None:
    (slot,) = h.job(1)
    h.round(A)
    h.dispatcher.refused(A, slot, "queue_full", "full", retry_after=0.5)
    assert h.round(A) == {}
    h.clock.now += 0.6
    assert h.round(A) == {A: [slot]}


def test_a_node_that_never_answers_loses_its_tasks_after_a_multiple_of_the_observed_p95(h: Harness) -> None:
    slots = h.job(12)
    assert h.dispatcher.due_in(B, slots[0]) == CAP  # nothing observed yet: the task's own cap
    offered = h.round(A, B, cores=2)
    assert len(offered[A]) == len(offered[B]) == 6
    h.answer(A, offered[A], after=0.01)  # A answers; B accepted its six and stays silent
    assert h.dispatcher.due_in(B, offered[B][0]) == FLOOR_S
    h.clock.now += FLOOR_S - 0.02
    assert h.dispatcher.late() == []
    h.clock.now += 0.02
    late = h.dispatcher.late()
    assert sorted(s.idx for _, s in late) == sorted(s.idx for s in offered[B]) and {p for p, _ in late} == {B}
    assert all(B in s.excluded and s.state == "pending" for s in offered[B])
    assert sorted(s.idx for s in h.round(A, B, cores=2)[A]) == sorted(s.idx for s in offered[B])  # at once, to A


def test_a_node_with_a_strike_is_ranked_down_and_holds_one_task_until_it_answers(h: Harness) -> None:
    (first,) = h.job(1, job="probe")
    assert h.round(B) == {B: [first]}
    h.clock.now += CAP + 1
    h.dispatcher.late()
    assert h.dispatcher.peers[B].strikes == 1
    h.clock.now += 1.1  # past the first back-off
    rest = h.job(8)
    scores = h.dispatcher.scores({p: Candidate(p, 1, frozenset({"wasm"})) for p in (A, B)})
    assert scores[B] == pytest.approx(scores[A] / 4)  # one strike: a quarter of the score
    offered = h.round(A, B)
    assert len(offered[B]) == 1 and len(offered[A]) == 4  # A's window is 4; B is on probation
    h.answer(B, offered[B], after=0.01)
    assert h.dispatcher.peers[B].strikes == 0 and len(h.round(A, B)[B]) == 4  # B answered: it takes the other 4
    assert all(s.state == "pending" for s in rest)


def test_observed_speed_outranks_the_benchmark_prior(h: Harness) -> None:
    slots = h.job(2 * MIN_OBSERVED, job="warmup")
    offered = h.round(A, B)
    h.answer(A, offered[A], after=0.01)
    h.answer(B, offered[B], after=0.2)  # B is 20x slower than A although it announces a 4x better benchmark
    scores = h.dispatcher.scores({p: Candidate(p, 1, frozenset({"wasm"}), 0.0, prior)
                                  for p, prior in ((A, 1.0), (B, 4.0))})
    assert scores[A] > scores[B] and all(s.state == "pending" for s in slots)


def test_a_task_fails_after_max_attempts_with_the_last_reason(h: Harness) -> None:
    (slot,) = h.job(1)
    for attempt in range(MAX_ATTEMPTS):
        offered = h.round(A)
        assert offered == {A: [slot]}, attempt
        h.dispatcher.refused(A, slot, "error", f"crash {attempt}")
    assert h.failed == [(slot, f"error: crash {MAX_ATTEMPTS - 1}")]


def test_task_faults_fail_at_once_and_peer_faults_exclude_the_node(h: Harness) -> None:
    bad, picky = h.job(2)
    h.round(A)
    h.dispatcher.refused(A, bad, "bad_id", "the id is not the hash")
    h.dispatcher.refused(A, picky, "no_runner", "no wasm here")
    assert h.failed == [(bad, "bad_id: the id is not the hash")]
    assert h.round(A) == {} and h.failed[-1] == (picky, "no_runner: no wasm here")  # nobody else can run it


def test_a_replica_waits_for_a_second_node_to_come_up_before_it_fails(h: Harness) -> None:
    """After a restart only this node is up for a moment: a redundancy-2 task it already answered must
    wait for a peer (it once failed at once with "no node that is up can run this task")."""
    (slot,) = h.job(1, redundancy=2)
    h.round(A)
    h.answer(A, [slot], after=0.05)
    assert h.round(A) == {} and h.failed == []  # nobody else is up yet: it waits
    h.clock.now += STRANDED_S / 2
    assert h.round(A) == {} and h.failed == []
    assert [s.idx for s in h.round(A, B)[B]] == [0]  # a peer came up in time
    (other,) = h.job(1, job="job2", redundancy=2)
    h.round(A)
    h.answer(A, [other], after=0.05)
    h.round(A)
    h.clock.now += STRANDED_S
    h.round(A)
    assert h.failed == [(other, "no node that is up can run this task")]


def test_a_node_going_down_gives_its_tasks_to_the_others(h: Harness) -> None:
    slots = h.job(3)
    h.round(A)
    assert [s.idx for s in h.dispatcher.peer_down(A)] == [0, 1, 2]
    assert sum(h.dispatcher.inflight.values()) == 0
    assert sorted(s.idx for s in h.round(B)[B]) == [0, 1, 2]
    assert all(s.attempts == 2 for s in slots)


def test_an_answer_counts_once_and_removing_a_slot_releases_its_replicas(h: Harness) -> None:
    (slot,) = h.job(1, redundancy=2)
    h.round(A, B)
    h.answer(A, [slot], after=0.05)
    assert not h.dispatcher.answered(A, slot)
    assert slot.observed == {A: pytest.approx(0.05)} and h.dispatcher.held(slot.task.id, B) == [slot]
    h.dispatcher.remove(slot)
    assert h.dispatcher.inflight == {A: 0, B: 0} and not h.dispatcher.slots and not h.dispatcher.by_task


def test_a_pinned_job_goes_only_to_its_node(h: Harness) -> None:
    (slot,) = h.job(1, to=C)
    assert h.round(A, B, C) == {C: [slot]}


def test_a_late_nodes_answer_still_counts_until_the_cap(h: Harness) -> None:
    slots = h.job(12)
    offered = h.round(A, B, cores=2)
    h.answer(A, offered[A], after=0.01)
    h.clock.now += FLOOR_S
    h.dispatcher.late()
    slow = offered[B][0]
    assert slow.overdue and h.dispatcher.held(slow.task.id, B) == [slow]
    assert h.dispatcher.answered(B, slow)  # B was slow, not silent: its result counts
    assert not slow.overdue and h.dispatcher.peers[B].strikes == 0 and len(slots) == 12


def test_a_task_whose_only_node_is_late_waits_for_it_and_fails_only_at_the_cap(h: Harness) -> None:
    h.job(MIN_OBSERVED, job="solo")
    h.answer(A, h.round(A, cores=2)[A], after=0.01)
    (slot,) = h.job(1, job="solo2")
    h.clock.now += 0.001
    h.round(A)
    h.dispatcher.jobs["solo2"] = h.dispatcher.jobs["solo"]  # the same work: its p95 applies
    h.clock.now += FLOOR_S + 0.01
    assert h.dispatcher.late() == [(A, slot)]
    assert h.round(A) == {} and h.failed == [] and slot.overdue  # nobody else: wait for A's late answer
    h.clock.now += CAP
    h.dispatcher.late()
    assert h.round(A) == {} and h.failed == [(slot, "late: no result in time")]


def test_this_nodes_own_copies_are_never_taken_back_early(h: Harness) -> None:
    h.dispatcher.local = A
    slots = h.job(12)
    offered = h.round(A, B, cores=2)
    h.answer(B, offered[B], after=0.01)
    assert h.dispatcher.due_in(A, slots[0]) == CAP and h.dispatcher.due_in(B, slots[0]) == FLOOR_S
    h.clock.now += FLOOR_S + 1
    assert h.dispatcher.late() == []


def test_only_verified_answers_count_toward_due_times(h: Harness) -> None:
    slots = h.job(12)
    offered = h.round(A, B, cores=2)
    h.clock.now += 0.001
    for slot in offered[A]:  # A answers junk at once: released, but its times do not count
        assert h.dispatcher.answered(A, slot)
    assert h.dispatcher.due_in(B, offered[B][0]) == CAP
    h.clock.now += FLOOR_S + 1
    assert h.dispatcher.late() == [] and len(slots) == 12
