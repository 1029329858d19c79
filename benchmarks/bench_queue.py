"""Benchmark the memory queue (gaia-queue-memory) against a straightforward heapq + lock queue.

Measures, each against its baseline in the same run:

* ``admit+next``: tasks/s through ``admit`` then ``next`` for N small tasks (default 10**6; module
  sent by id, an accepting ``gaia_validate_task`` hook). Both queues run the kernel's full
  admission check, de-duplicate, bound count and bytes, keep wait and share counters, and order
  by priority, fair share, earliest deadline and FIFO; the baseline does it with ``heapq`` and
  dicts under one lock. Tasks (and their cached ids) are built before the timed region.
  Before timing, both queues drain the same 20 000 tasks and must give the same order.
* ``scheduler push+pop``: the ordering structure alone, gaia_native.Scheduler (batched
  ``push_many``/``pop_many``) vs the baseline's heapq structure.
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
from gaia_core.scheduling import BACKEND, Scheduler

from gaia_queue_memory import MemoryQueue

MODULE_ID = "ab" * 32
SUBMITTERS = [f"{i:064x}" for i in range(8)]
CHECK_TASKS = 20_000
FLOOD_OFFERED, FLOOD_CAPACITY = 100_000, 10_000


class HeapFairShare:
    """The baseline's ordering: strict priority, then per-submitter virtual time, then EDF, FIFO.

    Same rules as gaia_native.Scheduler (see gaia_core.scheduling), with heapq, dicts and lazy
    deletion; picking a submitter scans the submitters of the top class.
    """

    def __init__(self) -> None:
        self.classes: dict[int, dict[str, list[tuple[float, int, str]]]] = {}
        self.vtime: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.active: dict[str, int] = {}  # submitter -> queued items
        self.live: dict[str, tuple[int, str]] = {}  # key -> (arrival, submitter)
        self.deadlines: list[tuple[float, int, str]] = []
        self.seq = 0

    def __len__(self) -> int:
        return len(self.live)

    def push(self, key: str, priority: int, deadline: float | None, submitter: str) -> None:
        if submitter not in self.active:
            if self.active:
                floor = min(self.vtime[s] for s in self.active)
                self.vtime[submitter] = max(self.vtime[submitter], floor)
            self.active[submitter] = 0
        self.active[submitter] += 1
        entry = (math.inf if deadline is None else deadline, self.seq, key)
        heapq.heappush(self.classes.setdefault(priority, {}).setdefault(submitter, []), entry)
        if deadline is not None:
            heapq.heappush(self.deadlines, entry)
        self.live[key] = (self.seq, submitter)
        self.seq += 1

    def _dead(self, entry: tuple[float, int, str]) -> bool:
        live = self.live.get(entry[2])
        return live is None or live[0] != entry[1]

    def _forget(self, key: str) -> str:
        _, submitter = self.live.pop(key)
        self.active[submitter] -= 1
        if not self.active[submitter]:
            del self.active[submitter]
        return submitter

    def pop(self) -> str | None:
        while self.classes:
            top = max(self.classes)
            subs = self.classes[top]
            best = None
            for submitter, heap in list(subs.items()):
                while heap and self._dead(heap[0]):
                    heapq.heappop(heap)
                if not heap:
                    del subs[submitter]
                    continue
                rank = (self.vtime[submitter], heap[0][0], heap[0][1], submitter)
                if best is None or rank < best:
                    best = rank
            if best is None:
                del self.classes[top]
                continue
            key = heapq.heappop(subs[best[3]])[2]
            self.vtime[self._forget(key)] += 1.0
            return key
        return None

    def remove(self, key: str) -> bool:
        if key not in self.live:
            return False
        self._forget(key)
        return True

    def pop_expired(self, now: float) -> list[str]:
        out = []
        while self.deadlines and self.deadlines[0][0] < now:
            entry = heapq.heappop(self.deadlines)
            if not self._dead(entry):
                self._forget(entry[2])
                out.append(entry[2])
        return out


class HeapqQueue:
    """The baseline queue: MemoryQueue's semantics with HeapFairShare under a threading.Lock."""

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.capacity = context.config.queue.capacity
        self.capacity_bytes = context.config.queue.capacity_bytes
        self.cond = threading.Condition(threading.Lock())
        self.order = HeapFairShare()
        self.queued: dict[str, tuple[Task, int, float]] = {}
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
            with self.cond:
                if task.id in self.queued or task.id in self.running:
                    return task.id
                if len(self.queued) + len(self.dropped) >= self.capacity or self.bytes + nbytes > self.capacity_bytes:
                    raise RejectedError("queue_full", "queue is full", retry_after=1.0)
                self.queued[task.id] = (task, nbytes, time.monotonic())
                self.order.push(task.id, task.priority, task.deadline, task.submitter)
                self.bytes += nbytes
                self.admitted += 1
                if self.waiting:
                    self.cond.notify()
            return task.id
        except RejectedError as exc:
            with self.cond:
                self.rejected[exc.reason] += 1
            raise

    def next(self, timeout: float | None = None) -> Task | None:
        until = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while True:
                for key in self.order.pop_expired(time.time()):
                    self.bytes -= self.queued.pop(key)[1]
                    self.dropped.append(key)
                key = self.order.pop()
                if key is not None:
                    task, nbytes, admitted_at = self.queued.pop(key)
                    self.bytes -= nbytes
                    self.running.add(key)
                    self.served[task.submitter] += 1
                    self.waits.append(time.monotonic() - admitted_at)
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
    items = [(t.id, t.priority, t.deadline, t.submitter) for t in tasks]
    native = Scheduler()
    start = time.perf_counter()
    native.push_many(items)
    popped = native.pop_many(len(items))
    gaia = time.perf_counter() - start
    heap = HeapFairShare()
    start = time.perf_counter()
    for item in items:
        heap.push(*item)
    baseline_order = [heap.pop() for _ in items]
    baseline = time.perf_counter() - start
    assert popped == baseline_order, "the baseline's order differs from the native scheduler's"
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
    same = drain_order(MemoryQueue(context(CHECK_TASKS)), sample) == drain_order(HeapqQueue(context(CHECK_TASKS)), sample)
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
