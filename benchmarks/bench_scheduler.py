"""Scheduler benchmark: gaia_native.Scheduler vs a heapq-based Python queue with the same semantics
(strict priority classes, per-submitter fair share by virtual time, EDF, FIFO), measured in the
same run on the same workload. Prints lines:

    <measure>: gaia=X <unit> baseline=Y <unit> ratio=Z

ratio = times faster than the baseline. The baseline's pop order is checked against gaia's on a
sample first, so both really do the same work.

Run: python benchmarks/bench_scheduler.py   (about 30 s on 2 cores)
"""

from __future__ import annotations

import heapq
import os
import random
import sys
import time

try:
    import gaia_native as g
except ImportError:
    sys.exit("gaia_native is not installed: pip install ./native (or make install)")

N = 1_000_000
BATCH = 10_000
PRIORITIES = 4
SUBMITTERS = [f"sub{i}" for i in range(16)]
WEIGHTS = {name: (1.0, 2.0, 0.5, 4.0)[i % 4] for i, name in enumerate(SUBMITTERS)}


class HeapqScheduler:
    """The same policy as gaia's Scheduler, written the efficient Python way: heapq everywhere,
    lazy invalidation of stale submitter entries (push/pop only; no cancel or expiry)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.classes: dict[int, dict[str, list[tuple[float, int, str]]]] = {}
        self.ready: dict[
            int, list[tuple[float, float, int, str]]
        ] = {}  # prio -> heap of submitter entries
        self.prios: list[int] = []  # heap of -priority (lazy)
        self.vt: dict[str, float] = {}
        self.weight: dict[str, float] = {}
        self.queued: dict[str, int] = {}
        self.sub_classes: dict[str, set[int]] = {}
        self.seq = 0

    def set_share(self, sub: str, weight: float) -> None:
        self.weight[sub] = weight

    def push_many(self, items: list[tuple[str, int, float | None, str]]) -> None:
        for key, prio, deadline, sub in items:
            self.push(key, prio, deadline, sub)

    def push(self, key: str, prio: int, deadline: float | None, sub: str) -> None:
        if key in self.keys:
            raise ValueError(f"duplicate {key}")
        self.keys.add(key)
        d = float("inf") if deadline is None else deadline
        if not self.queued.get(sub):
            active = [self.vt[s] for s, n in self.queued.items() if n]
            v = self.vt.get(sub, 0.0)
            self.vt[sub] = max(v, min(active)) if active else v
        self.queued[sub] = self.queued.get(sub, 0) + 1
        cls = self.classes.get(prio)
        if cls is None:
            cls = self.classes[prio] = {}
            self.ready[prio] = []
            heapq.heappush(self.prios, -prio)
        q = cls.get(sub)
        if q is None:
            q = cls[sub] = []
            self.sub_classes.setdefault(sub, set()).add(prio)
        entry = (d, self.seq, key)
        self.seq += 1
        if not q or entry < q[0]:
            heapq.heappush(self.ready[prio], (self.vt[sub], d, entry[1], sub))
        heapq.heappush(q, entry)

    def pop_many(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            key = self.pop()
            if key is None:
                break
            out.append(key)
        return out

    def pop(self) -> str | None:
        while self.prios and -self.prios[0] not in self.classes:
            heapq.heappop(self.prios)
        if not self.prios:
            return None
        prio = -self.prios[0]
        cls, ready = self.classes[prio], self.ready[prio]
        while True:
            v, _, seq, sub = heapq.heappop(ready)
            q = cls.get(sub)
            if q and q[0][1] == seq and self.vt[sub] == v:  # still current
                break
        _, _, key = heapq.heappop(q)
        self.keys.discard(key)
        self.queued[sub] -= 1
        self.vt[sub] = vt = self.vt[sub] + 1.0 / self.weight.get(sub, 1.0)
        if not q:
            del cls[sub]
            self.sub_classes[sub].discard(prio)
            if not cls:
                del self.classes[prio], self.ready[prio]
        for p in self.sub_classes[sub]:  # re-key the submitter wherever it waits
            head = self.classes[p][sub][0]
            heapq.heappush(self.ready[p], (vt, head[0], head[1], sub))
        return key


def workload(n: int, seed: int = 7) -> list[tuple[str, int, float | None, str]]:
    rng = random.Random(seed)
    subs = [rng.choice(SUBMITTERS) for _ in range(n)]
    return [
        (
            f"task-{i:07d}",
            rng.randrange(PRIORITIES),
            None if rng.random() < 0.5 else float(rng.randrange(10_000)),
            subs[i],
        )
        for i in range(n)
    ]


def run(sched, items) -> float:
    for sub, w in WEIGHTS.items():
        sched.set_share(sub, w)
    t0 = time.perf_counter()
    for i in range(0, len(items), BATCH):
        sched.push_many(items[i : i + BATCH])
    popped = 0
    while True:
        got = sched.pop_many(BATCH)
        if not got:
            break
        popped += len(got)
    dt = time.perf_counter() - t0
    assert popped == len(items)
    return dt


def interleaved(sched, items) -> tuple[float, list[str]]:
    """Steady state: push a batch, pop half a batch, repeat; then drain."""
    for sub, w in WEIGHTS.items():
        sched.set_share(sub, w)
    out: list[str] = []
    t0 = time.perf_counter()
    for i in range(0, len(items), BATCH):
        sched.push_many(items[i : i + BATCH])
        out += sched.pop_many(BATCH // 2)
    while got := sched.pop_many(BATCH):
        out += got
    return time.perf_counter() - t0, out


def main() -> None:
    print(f"# gaia_native {g.__version__} ({g.build_profile}), {os.cpu_count()} cores; "
          f"{N:,} tasks, {PRIORITIES} priorities, {len(SUBMITTERS)} submitters, half with deadlines; "
          "ratio = times faster than baseline")  # fmt: skip
    sample = workload(30_000, seed=1)
    _, want = interleaved(HeapqScheduler(), sample)
    _, got = interleaved(g.Scheduler(), sample)
    assert got == want, "baseline and gaia disagree on pop order"
    items = workload(N)
    t_g = run(g.Scheduler(), items)
    t_b = run(HeapqScheduler(), items)
    print(f"scheduler push_many+pop_many 1e6 tasks vs heapq: gaia={N / t_g / 1e6:.2f} Mtasks/s "
          f"baseline={N / t_b / 1e6:.2f} Mtasks/s ratio={t_b / t_g:.2f}", flush=True)  # fmt: skip
    t_g, _ = interleaved(g.Scheduler(), items)
    t_b, _ = interleaved(HeapqScheduler(), items)
    print(f"scheduler interleaved push/pop 1e6 tasks vs heapq: gaia={N / t_g / 1e6:.2f} Mtasks/s "
          f"baseline={N / t_b / 1e6:.2f} Mtasks/s ratio={t_b / t_g:.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
