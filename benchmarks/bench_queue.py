"""Benchmark the memory queue (gaia-queue-memory) against a straightforward heapq + lock queue.

Measures, each against its baseline in the same run:

* ``admit+next``: tasks/s through ``admit`` then ``next`` for N small tasks (default 10**6; module
  sent by id, an accepting ``gaia_validate_task`` hook). Both queues run the kernel's full
  admission check, de-duplicate, bound count and bytes (globally and per submitter share), keep
  wait and share counters, and order by fair share between submitters (round robin by virtual
  time) and, inside one submitter, by priority, earliest deadline and FIFO; the baseline does it
  with ``heapq``, deques and dicts under one lock. Tasks (and their cached ids) are built before
  the timed region. Before timing, both queues drain the same 20 000 tasks and must give the
  same order.
* ``scheduler push+pop``: the ordering structure alone, gaia_queue_memory's FairOrder (two levels
  of gaia_native.Scheduler, batched ``push_many``) vs the baseline's heapq structure; the same
  pop order is checked.
* ``flood``: 10**5 tasks offered to a queue of capacity 10**4, each queue in a fresh process:
  peak RSS growth and the rejection count.

Usage: python benchmarks/bench_queue.py [--tasks N]
"""

from __future__ import annotations

import argparse
import collections
import heapq
import json
import math
import random
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from gaia_core import admission, hookimpl, plugins
from gaia_core.config import Config, Home, QueueSection
from gaia_core.errors import RejectedError
from gaia_core.model import Envelope, Task
from gaia_core.roles import NodeContext
from gaia_core.scheduling import BACKEND
from gaia_queue_memory import MemoryQueue
from gaia_queue_memory.options import SECTION, QueueOptions
from gaia_queue_memory.order import FairOrder

MODULE_ID = "ab" * 32
SUBMITTERS = [f"{i:064x}" for i in range(8)]
CHECK_TASKS = 20_000
FLOOD_OFFERED, FLOOD_CAPACITY = 100_000, 10_000


class HeapFairShare:
    """The baseline's ordering, the same as MemoryQueue's (gaia_queue_memory.order.FairOrder).

    Between submitters: fair share by virtual time (each pop adds 1; a submitter becoming active
    starts at max(own, smallest active virtual time); ties by its oldest queued *turn*, one turn per
    queued task, numbered as pushed in batches grouped by submitter; everything forgotten once the
    structure is empty). Inside one submitter: highest priority, then earliest deadline, then FIFO.
    Written with heapq, deques and dicts with lazy deletion; equal shares (the bench sets none).
    """

    def __init__(self) -> None:
        self.tasks: dict[str, list[tuple[int, float, int, str]]] = {}  # submitter -> its task heap
        self.turns: dict[str, collections.deque[int]] = {}  # submitter -> its turn numbers, oldest first
        self.vtime: dict[str, float] = {}
        self.top: list[tuple[float, int, str]] = []  # (vtime, oldest turn, submitter), stale ones skipped
        self.live: dict[str, tuple[int, str, float | None]] = {}  # key -> (arrival, submitter, deadline)
        self.deadlines: list[tuple[float, str]] = []
        self.seq = 0
        self.turn_seq = 0

    def __len__(self) -> int:
        return len(self.live)

    def _min_active_vtime(self) -> float | None:
        while self.top:
            vtime, turn, submitter = self.top[0]
            turns = self.turns.get(submitter)
            if turns and turns[0] == turn and self.vtime[submitter] == vtime:
                return vtime
            heapq.heappop(self.top)
        return None

    def push_many(self, items: list[tuple[str, int, float | None, str]]) -> None:
        """Queue ``(key, priority, deadline, submitter)`` items, turns numbered per submitter group."""
        groups: dict[str, list[tuple[str, int, float | None, str]]] = {}
        for item in items:
            groups.setdefault(item[3], []).append(item)
        for submitter, group in groups.items():
            heap = self.tasks.setdefault(submitter, [])
            for key, priority, deadline, _ in group:
                heapq.heappush(heap, (-priority, math.inf if deadline is None else deadline, self.seq, key))
                if deadline is not None:
                    heapq.heappush(self.deadlines, (deadline, key))
                self.live[key] = (self.seq, submitter, deadline)
                self.seq += 1
            for _ in group:
                turns = self.turns.get(submitter)
                if not turns:
                    floor = self._min_active_vtime()
                    own = self.vtime.get(submitter, 0.0)
                    self.vtime[submitter] = own if floor is None else max(own, floor)
                    turns = self.turns[submitter] = collections.deque()
                    heapq.heappush(self.top, (self.vtime[submitter], self.turn_seq, submitter))
                turns.append(self.turn_seq)
                self.turn_seq += 1
        if len(self.deadlines) > 2 * len(self.live) + 64:
            self.deadlines = [(d, key) for key, (_, _, d) in self.live.items() if d is not None]
            heapq.heapify(self.deadlines)

    def _forget_if_idle(self, submitter: str) -> None:
        if not self.turns[submitter]:
            del self.turns[submitter], self.tasks[submitter]
            if not self.live:
                self.vtime.clear()
                self.top.clear()

    def pop(self) -> str | None:
        if self._min_active_vtime() is None:
            return None
        _, _, submitter = heapq.heappop(self.top)
        turns = self.turns[submitter]
        turns.popleft()
        heap = self.tasks[submitter]
        while True:
            _, _, seq, key = heapq.heappop(heap)
            live = self.live.get(key)
            if live is not None and live[0] == seq:
                break
        del self.live[key]
        self.vtime[submitter] += 1.0
        if turns:
            heapq.heappush(self.top, (self.vtime[submitter], turns[0], submitter))
        self._forget_if_idle(submitter)
        return key

    def remove(self, key: str) -> bool:
        live = self.live.pop(key, None)
        if live is None:
            return False
        submitter = live[1]
        self.turns[submitter].pop()  # as FairOrder: the newest turn goes, the oldest keeps its place
        self._forget_if_idle(submitter)
        return True

    def pop_expired(self, now: float) -> list[str]:
        out = []
        while self.deadlines and self.deadlines[0][0] < now:
            _, key = heapq.heappop(self.deadlines)
            if self.remove(key):
                out.append(key)
        return out


class HeapqQueue:
    """The baseline queue: MemoryQueue's semantics (admission, per-submitter share and global
    bounds, batched pushes, expiry, counters) with HeapFairShare under a threading.Lock."""

    def __init__(self, context: NodeContext) -> None:
        share = QueueOptions.from_section(context.config.section(SECTION)).submitter_share
        self.context = context
        self.capacity = context.config.queue.capacity
        self.capacity_bytes = context.config.queue.capacity_bytes
        self.share = max(1, int(self.capacity * share))
        self.share_bytes = max(1, int(self.capacity_bytes * share))
        self.cond = threading.Condition(threading.Lock())
        self.order = HeapFairShare()
        self.queued: dict[str, tuple[Task, int, float]] = {}
        self.pending: list[tuple[str, int, float | None, str]] = []
        self.held: collections.Counter[str] = collections.Counter()
        self.held_bytes: collections.Counter[str] = collections.Counter()
        self.running: set[str] = set()
        self.dropped: list[str] = []
        self.bytes = self.admitted = self.waiting = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.served: collections.Counter[str] = collections.Counter()
        self.waits: collections.deque[float] = collections.deque(maxlen=4096)

    def admit(self, task: Task, *, envelope: Envelope | None = None) -> str:
        try:
            admission.check(task, self.context, envelope=envelope)
            nbytes = len(task.input) + len(task.module or b"")
            if nbytes > self.share_bytes:
                raise RejectedError("too_large", "task is larger than one submitter's share")
            who = task.submitter
            with self.cond:
                if task.id in self.queued or task.id in self.running:
                    return task.id
                if self.held[who] >= self.share or self.held_bytes[who] + nbytes > self.share_bytes:
                    raise RejectedError("queue_full", "submitter holds its share", retry_after=1.0)
                if len(self.queued) + len(self.dropped) >= self.capacity or self.bytes + nbytes > self.capacity_bytes:
                    raise RejectedError("queue_full", "queue is full", retry_after=1.0)
                self.queued[task.id] = (task, nbytes, time.monotonic())
                self.pending.append((task.id, task.priority, task.deadline, who))
                self.held[who] += 1
                self.held_bytes[who] += nbytes
                self.bytes += nbytes
                self.admitted += 1
                if self.waiting:
                    self.cond.notify()
            return task.id
        except RejectedError as exc:
            with self.cond:
                self.rejected[exc.reason] += 1
            raise

    def _take(self, key: str) -> tuple[Task, float]:
        task, nbytes, admitted_at = self.queued.pop(key)
        self.bytes -= nbytes
        self.held[task.submitter] -= 1
        self.held_bytes[task.submitter] -= nbytes
        if not self.held[task.submitter]:
            del self.held[task.submitter], self.held_bytes[task.submitter]
        return task, admitted_at

    def next(self, timeout: float | None = None) -> Task | None:
        until = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while True:
                if self.pending:
                    self.order.push_many(self.pending)
                    self.pending = []
                for key in self.order.pop_expired(time.time()):
                    self._take(key)
                    self.dropped.append(key)
                key = self.order.pop()
                if key is not None:
                    task, admitted_at = self._take(key)
                    self.waits.append(time.monotonic() - admitted_at)
                    self.running.add(key)
                    self.served[task.submitter] += 1
                    return task
                remaining = None if until is None else until - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self.waiting += 1
                self.cond.wait(remaining)
                self.waiting -= 1


class AcceptAll:
    """A ``gaia_validate_task`` plugin that accepts every task."""

    @hookimpl
    def gaia_validate_task(self, task: Task, envelope: Envelope | None, context: NodeContext) -> None:
        return None


def context(capacity: int) -> NodeContext:
    loaded = plugins.Plugins(plugins.new_manager(), {})
    loaded.register(AcceptAll(), name="accept-all")
    return NodeContext(config=Config(queue=QueueSection(capacity=capacity)), home=Home(Path("unused")),
                       hook=loaded.hook, task_kinds=frozenset({"wasm"}))


def make_tasks(n: int, *, seed: int, input_bytes: int = 16) -> list[Task]:
    """Small tasks of 8 unevenly active submitters, 3 priorities, a tenth with far deadlines."""
    rng = random.Random(seed)
    far = time.time() + 86_400
    tasks = []
    for i in range(n):
        task = Task(module_id=MODULE_ID, input=i.to_bytes(8, "big").ljust(input_bytes, b"."),
                    submitter=SUBMITTERS[min(7, int(rng.expovariate(0.5)))],
                    priority=rng.choice((0, 0, 0, 1, -1)),
                    deadline=far + rng.random() * 3600 if rng.random() < 0.1 else None)
        task.id  # noqa: B018 - compute the cached id outside the timed region
        tasks.append(task)
    return tasks


def drain_order(queue: MemoryQueue | HeapqQueue, tasks: list[Task]) -> list[str]:
    for task in tasks:
        queue.admit(task)
    return [queue.next(timeout=0).id for _ in tasks]


def time_admit_next(queue: MemoryQueue | HeapqQueue, tasks: list[Task]) -> float:
    admit, take = queue.admit, queue.next
    start = time.perf_counter()
    for task in tasks:
        admit(task)
    for _ in range(len(tasks)):
        take(0)
    return time.perf_counter() - start


def time_scheduler(tasks: list[Task]) -> tuple[float, float]:
    """Push every task in one batch then pop them all: FairOrder vs HeapFairShare, same order."""
    items = [(t.id, t.priority, t.deadline, t.submitter) for t in tasks]
    fair = FairOrder({})
    start = time.perf_counter()
    fair.push_many(items)
    popped = [fair.pop() for _ in items]
    gaia = time.perf_counter() - start
    heap = HeapFairShare()
    start = time.perf_counter()
    heap.push_many(items)
    baseline_order = [heap.pop() for _ in items]
    baseline = time.perf_counter() - start
    assert popped == baseline_order, "the baseline's order differs from gaia_queue_memory's FairOrder"
    return gaia, baseline


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss would carry the parent's over exec)."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def flood(kind: str) -> dict[str, float]:
    """Offer FLOOD_OFFERED tasks (built one at a time) to a queue of capacity FLOOD_CAPACITY."""
    queue = (MemoryQueue if kind == "gaia" else HeapqQueue)(context(FLOOD_CAPACITY))
    before = peak_rss_mib()
    rejected = 0
    for i in range(FLOOD_OFFERED):
        task = Task(module_id=MODULE_ID, input=i.to_bytes(8, "big").ljust(256, b"."),
                    submitter=SUBMITTERS[i % 8])
        try:
            queue.admit(task)
        except RejectedError as exc:
            assert exc.reason == "queue_full"
            rejected += 1
    peak = peak_rss_mib()
    return {"rss_growth_mib": peak - before, "peak_rss_mib": peak, "rejected": rejected}


def run_flood(kind: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--flood", kind], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def line(measure: str, gaia: float, baseline: float, fmt: str = ".0f") -> None:
    ratio = gaia / baseline if baseline else float("nan")
    print(f"{measure}: gaia={gaia:{fmt}} baseline={baseline:{fmt}} ratio={ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks through admit+next")
    parser.add_argument("--flood", choices=("gaia", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        print(json.dumps(flood(args.flood)))
        return
    print(f"# scheduler backend: {BACKEND}; tasks: {args.tasks}")

    sample = make_tasks(CHECK_TASKS, seed=1)
    same = (drain_order(MemoryQueue(context(CHECK_TASKS)), sample)
            == drain_order(HeapqQueue(context(CHECK_TASKS)), sample))
    assert same, "the baseline queue orders tasks differently from MemoryQueue"

    tasks = make_tasks(args.tasks, seed=2)
    gaia_s = time_admit_next(MemoryQueue(context(args.tasks)), tasks)
    baseline_s = time_admit_next(HeapqQueue(context(args.tasks)), tasks)
    line("admit+next throughput (tasks/s)", args.tasks / gaia_s, args.tasks / baseline_s)

    gaia_s, baseline_s = time_scheduler(tasks)
    line("scheduler push+pop throughput (tasks/s)", args.tasks / gaia_s, args.tasks / baseline_s)
    del tasks

    gaia, baseline = run_flood("gaia"), run_flood("baseline")
    line(f"flood {FLOOD_OFFERED} offered to capacity {FLOOD_CAPACITY}, peak RSS growth (MiB)",
         gaia["rss_growth_mib"], baseline["rss_growth_mib"], ".1f")
    line("flood rejected (tasks)", gaia["rejected"], baseline["rejected"])
    print(f"# flood peak RSS of the whole process (MiB): gaia={gaia['peak_rss_mib']:.1f} "
          f"baseline={baseline['peak_rss_mib']:.1f}")


if __name__ == "__main__":
    main()
