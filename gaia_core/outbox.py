"""Results waiting to be delivered to their submitters: bounded per submitter, in all, and in age.

A worker keeps a task's result only until its submitter has it. A submitter that cannot be reached
must not make the worker hold unbounded memory, nor delay other submitters' results, so the
:class:`Outbox` keeps one queue per submitter, bounded in bytes per submitter and in all
(``[privacy] outbox_bytes_per_submitter`` and ``outbox_bytes``) and, once a delivery to the submitter
has failed, in age (``[privacy] retention_s``): beyond a bound the oldest results are dropped, with
one info line per submitter and a counter. A submitter whose delivery failed backs off (doubling,
capped) while the others are served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable

from attrs import frozen

from gaia_core import codec
from gaia_core.model import Proof, TaskResult

log = logging.getLogger("gaia.outbox")

#: First and longest wait before retrying a submitter whose delivery failed.
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 30.0


@frozen
class Pending:
    """One result waiting for its submitter."""

    result: TaskResult
    proof: Proof | None
    nbytes: int
    queued_at: float


class Outbox:
    """Undelivered results by submitter; thread-safe. ``clock`` is monotonic seconds."""

    def __init__(self, *, per_submitter_bytes: int, total_bytes: int, max_age_s: float, failing_slots: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_submitter_bytes = per_submitter_bytes
        self.failing_slots = failing_slots  # deliveries in flight at once to submitters whose last one failed
        self.total_bytes = total_bytes
        self.max_age_s = max_age_s
        self._clock = clock
        self._queues: OrderedDict[str, deque[Pending]] = OrderedDict()  # least recently filled first
        self._bytes: Counter[str] = Counter()
        self._retry_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._busy: set[str] = set()
        self._warned: set[str] = set()
        self.dropped: Counter[str] = Counter()  # reason ("full", "expired") -> results dropped
        self.changed = threading.Condition()

    def put(self, submitter: str, result: TaskResult, proof: Proof | None) -> None:
        """Queue ``result`` for ``submitter``, dropping the oldest results beyond the byte bounds."""
        nbytes = len(codec.encode(result)) + (len(codec.encode(proof)) if proof is not None else 0)
        with self.changed:
            queue = self._queues.setdefault(submitter, deque())
            self._queues.move_to_end(submitter)
            queue.append(Pending(result, proof, nbytes, self._clock()))
            self._bytes[submitter] += nbytes
            self._bound(submitter)
            self.changed.notify_all()

    def ready(self, *, ignore_backoff: bool = False) -> list[str]:
        """Submitters with results to deliver and no delivery in flight, except those backing off
        (unless ``ignore_backoff``: a last try before the node stops).

        Submitters whose last delivery failed get at most ``failing_slots`` deliveries in flight
        together, so however many of them hang, the others are still served.
        """
        now = self._clock()
        with self.changed:
            self._expire(now)
            failing = sum(s in self._backoff for s in self._busy)
            chosen = []
            for submitter in self._queues:
                if submitter in self._busy or not (ignore_backoff or self._retry_at.get(submitter, 0.0) <= now):
                    continue
                if submitter in self._backoff:
                    if failing >= self.failing_slots:
                        continue
                    failing += 1
                chosen.append(submitter)
            return chosen

    def take(self, submitter: str, limit: int) -> list[Pending]:
        """Up to ``limit`` of ``submitter``'s oldest results; they are its delivery in flight until
        :meth:`delivered` or :meth:`failed` is called."""
        with self.changed:
            self._busy.add(submitter)
            queue = self._queues.get(submitter, deque())
            taken = [queue.popleft() for _ in range(min(limit, len(queue)))]
            self._bytes[submitter] -= sum(item.nbytes for item in taken)
            self._forget_if_empty(submitter)
            return taken

    def delivered(self, submitter: str) -> None:
        """The submitter acknowledged what was taken: it is reachable again."""
        with self.changed:
            self._busy.discard(submitter)
            self._retry_at.pop(submitter, None)
            self._backoff.pop(submitter, None)
            self._warned.discard(submitter)
            self.changed.notify_all()

    def failed(self, submitter: str, items: list[Pending]) -> float:
        """Delivery of ``items`` failed: put them back (oldest first, within the bounds) and back off.

        Returns the back-off in seconds before this submitter is tried again.
        """
        with self.changed:
            self._busy.discard(submitter)
            wait = min(BACKOFF_MAX_S, self._backoff.get(submitter, BACKOFF_MIN_S / 2) * 2)
            self._backoff[submitter] = wait
            self._retry_at[submitter] = self._clock() + wait
            queue = self._queues.setdefault(submitter, deque())
            queue.extendleft(reversed(items))
            self._bytes[submitter] += sum(item.nbytes for item in items)
            self._expire(self._clock())
            self._bound(submitter)
            self._forget_if_empty(submitter)
            self.changed.notify_all()
            return wait

    def stats(self) -> dict[str, int]:
        """Results and bytes held, submitters waiting, and results dropped by reason."""
        with self.changed:
            return {"results": sum(len(q) for q in self._queues.values()), "bytes": sum(self._bytes.values()),
                    "submitters": len(self._queues), **{f"dropped_{k}": v for k, v in self.dropped.items()}}

    def __len__(self) -> int:
        with self.changed:
            return sum(len(q) for q in self._queues.values())

    # -- internals (called with the lock held) ---------------------------------------------------

    def _bound(self, submitter: str) -> None:
        """Drop the oldest results beyond the bounds: ``submitter``'s own, then the largest holder's."""
        while self._bytes[submitter] > self.per_submitter_bytes:
            self._drop_oldest(submitter, "full")
        while sum(self._bytes.values()) > self.total_bytes:
            self._drop_oldest(max(self._bytes, key=self._bytes.__getitem__), "full")

    def _expire(self, now: float) -> None:
        """Drop results older than ``max_age_s`` of submitters whose delivery failed (backing off)."""
        for submitter in [s for s in self._queues if s in self._backoff]:
            queue = self._queues[submitter]
            while queue and now - queue[0].queued_at > self.max_age_s:
                self._drop_oldest(submitter, "expired")

    def _drop_oldest(self, submitter: str, reason: str) -> None:
        queue = self._queues[submitter]
        item = queue.popleft()
        self._bytes[submitter] -= item.nbytes
        self.dropped[reason] += 1
        if submitter not in self._warned:
            self._warned.add(submitter)
            log.info("dropping undelivered results for an unreachable submitter", extra={
                "submitter": submitter[:16], "reason": reason, "held_bytes": self._bytes[submitter],
                "hint": "results are kept up to [privacy] outbox_bytes_per_submitter, outbox_bytes and "
                        "retention_s; the submitter re-sends tasks it gets no result for"})
        self._forget_if_empty(submitter)

    def _forget_if_empty(self, submitter: str) -> None:
        """Drop every trace of a submitter with nothing waiting (so many identities cost nothing)."""
        if not self._queues.get(submitter) and submitter in self._queues:
            del self._queues[submitter]
            del self._bytes[submitter]
            if submitter not in self._busy:
                self._retry_at.pop(submitter, None)
                self._backoff.pop(submitter, None)
                self._warned.discard(submitter)
