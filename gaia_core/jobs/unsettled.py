"""Settlements a worker has not taken yet: kept by the submitter and sent again, bounded in count and time.

A worker that is down, restarting, or has not yet read the acknowledgement that made it wait gets
its credit on a later try instead of never. With a store, each credit owed is also a row of the
``unsettled`` table, written in the transaction that writes its granted ledger row and deleted once
the worker took it, so a submitter stopped or killed before the worker heard of it sends it after
its restart (the credit sent is the granted ledger row). A credit given up after :data:`KEEP_S`
is still told: the worker asks for it when it reaches this node again (:meth:`Unsettled.answer`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from gaia_core import codec
from gaia_core.jobs.messages import CreditQuery, Settlement
from gaia_core.rewards import Credit, Ledger

log = logging.getLogger("gaia.jobs")

#: Seconds between two tries, how long a credit is tried before it is given up, and credits kept at most.
RETRY_S, KEEP_S, MAX_KEPT = 2.0, 300.0, 65536


class Unsettled:
    """Credits by worker whose ``task.settled`` message did not get through, each with the time it is given up.

    ``clock`` is wall time (``time.time``): with ``ledger``, give-up times are kept across restarts in its store.
    """

    def __init__(self, clock: Callable[[], float] = time.time, *, ledger: Ledger | None = None) -> None:
        self._clock = clock
        self._ledger = ledger
        self._store = None if ledger is None else ledger.store
        self._kept: dict[str, dict[str, tuple[Credit, float]]] = {}  # worker -> task id -> (credit, give up at)
        self._busy: set[str] = set()  # workers with a try under way
        self._next = 0.0
        self._lock = threading.Lock()

    def owe(self, credits: Mapping[str, Credit]) -> None:
        """Credits just granted (worker -> credit), about to be sent: note them in the store until taken.

        Deferred: call it inside the :meth:`~gaia_core.store.Store.atomic` block that records their
        granted ledger rows, so both are written in one transaction.
        """
        if self._store is not None:
            until = self._clock() + KEEP_S
            for peer, amount in credits.items():
                self._store.defer("INSERT OR REPLACE INTO unsettled (node_id, task_id, until) VALUES (?, ?, ?)",
                                  (peer, amount.task_id, until))

    def load(self) -> int:
        """At start: take the credits the store still owes (forgetting those past their give-up time and
        all but the :data:`MAX_KEPT` newest); they are due at once. Returns how many."""
        if self._ledger is None or self._store is None:
            return 0
        self._store.execute("DELETE FROM unsettled WHERE until <= ? OR rowid NOT IN "
                            "(SELECT rowid FROM unsettled ORDER BY until DESC LIMIT ?)", (self._clock(), MAX_KEPT))
        count = 0
        for peer, task_id, until in self._store.execute("SELECT node_id, task_id, until FROM unsettled"):
            amount = self._ledger.granted(peer, task_id)
            if amount is not None:
                with self._lock:
                    self._kept.setdefault(peer, {})[task_id] = (amount, until)
                count += 1
        return count

    def keep(self, peer: str, credits: tuple[Credit, ...]) -> None:
        """A try for ``peer`` failed: keep its ``credits`` for a later one, until their give-up time."""
        now = self._clock()
        given_up = []
        with self._lock:
            self._busy.discard(peer)
            kept = self._kept.setdefault(peer, {})
            for amount in credits:
                _, until = kept.get(amount.task_id, (amount, now + KEEP_S))
                if until <= now or (amount.task_id not in kept and self._count() >= MAX_KEPT):
                    kept.pop(amount.task_id, None)
                    given_up.append(amount)
                    log.info("settlement given up", extra={"peer": peer[:16], "task_id": amount.task_id[:16]})
                else:
                    kept[amount.task_id] = (amount, until)
            if not kept:
                del self._kept[peer]
        self._forget(peer, given_up)

    def sent(self, peer: str, credits: tuple[Credit, ...]) -> None:
        """A try for ``peer`` got ``credits`` through."""
        with self._lock:
            self._busy.discard(peer)
            kept = self._kept.get(peer, {})
            for amount in credits:
                kept.pop(amount.task_id, None)
            if not kept:
                self._kept.pop(peer, None)
        self._forget(peer, credits)

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

    def answer(self, peer: str, body: bytes) -> bytes:
        """Answer ``peer``'s ``task.credits`` query: the credit this node's ledger granted it for each task
        it names (none for a task it granted nothing for), as a :class:`Settlement`."""
        query = codec.decode(body, CreditQuery)
        granted = [self._ledger.granted(peer, task_id) for task_id in query.task_ids] if self._ledger else []
        return codec.encode(Settlement(amount for amount in granted if amount is not None))

    def _forget(self, peer: str, credits: list[Credit] | tuple[Credit, ...]) -> None:
        """The store no longer owes ``peer`` these ``credits`` (taken, or given up)."""
        if self._store is not None:
            for amount in credits:
                self._store.defer("DELETE FROM unsettled WHERE node_id = ? AND task_id = ?", (peer, amount.task_id))

    def _count(self) -> int:
        return sum(len(kept) for kept in self._kept.values())
