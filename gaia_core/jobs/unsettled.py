"""Settlements a worker has not taken yet: kept by the submitter and sent again, bounded in count and time.

A worker that is down, restarting, or has not yet read the acknowledgement that made it wait gets
its credit on a later try instead of never.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gaia_core.rewards import Credit

log = logging.getLogger("gaia.jobs")

#: Seconds between two tries, how long a credit is tried before it is given up, and credits kept at most.
RETRY_S, KEEP_S, MAX_KEPT = 2.0, 300.0, 65536


class Unsettled:
    """Credits by worker whose ``task.settled`` message did not get through, each with the time it is given up."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: dict[str, dict[str, tuple[Credit, float]]] = {}  # worker -> task id -> (credit, give up at)
        self._busy: set[str] = set()  # workers with a try under way
        self._next = 0.0
        self._lock = threading.Lock()

    def keep(self, peer: str, credits: tuple[Credit, ...]) -> None:
        """A try for ``peer`` failed: keep its ``credits`` for a later one, until their give-up time."""
        now = self._clock()
        with self._lock:
            self._busy.discard(peer)
            kept = self._kept.setdefault(peer, {})
            for amount in credits:
                _, until = kept.get(amount.task_id, (amount, now + KEEP_S))
                if until <= now or (amount.task_id not in kept and self._count() >= MAX_KEPT):
                    kept.pop(amount.task_id, None)
                    log.info("settlement given up", extra={"peer": peer[:16], "task_id": amount.task_id[:16]})
                else:
                    kept[amount.task_id] = (amount, until)
            if not kept:
                del self._kept[peer]

    def sent(self, peer: str, credits: tuple[Credit, ...]) -> None:
        """A try for ``peer`` got ``credits`` through."""
        with self._lock:
            self._busy.discard(peer)
            kept = self._kept.get(peer, {})
            for amount in credits:
                kept.pop(amount.task_id, None)
            if not kept:
                self._kept.pop(peer, None)

    def due(self) -> list[tuple[str, tuple[Credit, ...]]]:
        """Every :data:`RETRY_S`: the credits to try again, by worker (none for a worker whose try is under way)."""
        now = self._clock()
        with self._lock:
            if now < self._next:
                return []
            self._next = now + RETRY_S
            due = [(p, tuple(c for c, _ in kept.values())) for p, kept in self._kept.items() if p not in self._busy]
            self._busy.update(p for p, _ in due)
            return due

    def _count(self) -> int:
        return sum(len(kept) for kept in self._kept.values())
