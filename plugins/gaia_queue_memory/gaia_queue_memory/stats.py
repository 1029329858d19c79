"""The queue's counters: admissions, rejections, outcomes, wait times and per-submitter share.

Not thread-safe on its own: :class:`~gaia_queue_memory.queue.MemoryQueue` calls it under its lock.
"""

from __future__ import annotations

import collections

from gaia_core.plugin_api import QueueStats

#: How ``share`` names tasks submitted locally (empty ``task.submitter``).
LOCAL = "local"
#: Bounds of the ``retry_after`` hint of a ``queue_full`` rejection, in seconds.
RETRY_MIN_S, RETRY_MAX_S, RETRY_DEFAULT_S = 0.05, 60.0, 1.0


def percentile(ordered: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-quantile (0 < q <= 1) of an ascending list; None when empty."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n*q), at least 1
    return ordered[int(rank) - 1]


class Counters:
    """Everything :meth:`MemoryQueue.stats` reports besides the depth."""

    def __init__(self, wait_samples: int) -> None:
        self.admitted = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.finished: collections.Counter[str] = collections.Counter()
        self.served: collections.Counter[str] = collections.Counter()
        self._waits: collections.deque[float] = collections.deque(maxlen=wait_samples)
        self._last_dispatch: float | None = None
        self._interval: float | None = None

    def dispatched(self, submitter: str, admitted_at: float, now: float) -> None:
        """A task left the queue for a runner at monotonic time ``now``."""
        self.served[submitter or LOCAL] += 1
        self._waits.append(now - admitted_at)
        if self._last_dispatch is not None:
            gap = now - self._last_dispatch
            self._interval = gap if self._interval is None else 0.9 * self._interval + 0.1 * gap
        self._last_dispatch = now

    def retry_after(self, depth: int) -> float:
        """Seconds until about a tenth of a queue of ``depth`` has drained at the recent dispatch rate."""
        if self._interval is None:
            return RETRY_DEFAULT_S
        return min(RETRY_MAX_S, max(RETRY_MIN_S, self._interval * max(1, depth // 10)))

    def snapshot(self, depth: int, depth_bytes: int, capacity: int) -> QueueStats:
        """The counters as a :class:`~gaia_core.roles.QueueStats`."""
        waits = sorted(self._waits)
        total = sum(self.served.values())
        return QueueStats(
            depth=depth, depth_bytes=depth_bytes, capacity=capacity, admitted=self.admitted,
            rejected=dict(self.rejected), finished=dict(self.finished),
            wait_p50_s=percentile(waits, 0.50), wait_p99_s=percentile(waits, 0.99),
            share={name: n / total for name, n in self.served.items()},
        )
