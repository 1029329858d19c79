"""The queue's pop order: fair share between submitters, priority only inside a submitter.

Two levels of the native scheduler (:class:`gaia_core.scheduling.Scheduler`):

* one scheduler per submitter orders that submitter's own tasks: highest ``priority`` first,
  then earliest deadline, then FIFO;
* a top scheduler holds one *turn* per queued task, under its submitter and all at priority 0,
  and so picks whose turn it is by fair share (virtual time over share weight, no credit banked
  while idle; ties by arrival). The turn says which submitter goes, that submitter's own
  scheduler says which of its tasks.

So a task's priority never lets its submitter overtake another submitter: a flood at priority
1000 from one identity is served alternately with everyone else's work. Expiry uses a heap of
deadlines (lazy deletion, compacted when it holds more dead entries than live ones).
"""

from __future__ import annotations

import collections
import heapq
import itertools
from collections.abc import Iterable, Mapping

from gaia_core.plugin_api import Scheduler

#: Entries of the deadline heap kept before a compaction is considered.
_HEAP_SLACK = 64


class FairOrder:
    """Task ids in pop order (see the module docstring). Not thread-safe: the queue holds its lock."""

    def __init__(self, shares: Mapping[str, float]) -> None:
        self._shares = dict(shares)
        self._top = self._fresh_top()
        self._subs: dict[str, Scheduler] = {}
        self._turns: dict[str, collections.deque[str]] = {}  # submitter -> its turns in the top, oldest first
        self._turn_owner: dict[str, str] = {}  # turn key -> submitter
        self._turn_seq = itertools.count()
        self._owner: dict[str, tuple[str, float | None]] = {}  # task id -> (submitter, deadline)
        self._deadlines: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._owner)

    def push_many(self, items: Iterable[tuple[str, int, float | None, str]]) -> None:
        """Queue ``(task_id, priority, deadline, submitter)`` items, one batch per submitter."""
        groups: dict[str, list[tuple[str, int, float | None, str]]] = {}
        for item in items:
            groups.setdefault(item[3], []).append(item)
        turns = []
        for submitter, group in groups.items():
            sched = self._subs.get(submitter)
            if sched is None:
                sched = self._subs[submitter] = Scheduler()
            sched.push_many(group)
            queue = self._turns.setdefault(submitter, collections.deque())
            for task_id, _, deadline, _ in group:
                self._owner[task_id] = (submitter, deadline)
                if deadline is not None:
                    heapq.heappush(self._deadlines, (deadline, task_id))
                turn = str(next(self._turn_seq))
                self._turn_owner[turn] = submitter
                queue.append(turn)
                turns.append((turn, 0, None, submitter))
        self._top.push_many(turns)
        if len(self._deadlines) > 2 * len(self._owner) + _HEAP_SLACK:
            self._deadlines = [(d, i) for i, (_, d) in self._owner.items() if d is not None]
            heapq.heapify(self._deadlines)

    def pop(self) -> str | None:
        """The next task id, or None when nothing is queued."""
        turn = self._top.pop()
        if turn is None:
            return None
        submitter = self._turn_owner.pop(turn)
        self._turns[submitter].popleft()  # a submitter's turns come out oldest first
        task_id = self._subs[submitter].pop()
        del self._owner[task_id]
        self._forget_if_idle(submitter)
        return task_id

    def remove(self, task_id: str) -> bool:
        """Take ``task_id`` out without serving it (nor charging its submitter); True when it was queued."""
        owner = self._owner.pop(task_id, None)
        if owner is None:
            return False
        submitter = owner[0]
        self._subs[submitter].remove(task_id)
        turn = self._turns[submitter].pop()
        del self._turn_owner[turn]
        self._top.remove(turn)
        self._forget_if_idle(submitter)
        return True

    def pop_expired(self, now: float) -> list[str]:
        """Remove and return every task whose deadline is before ``now``, earliest deadline first."""
        expired = []
        while self._deadlines and self._deadlines[0][0] < now:
            _, task_id = heapq.heappop(self._deadlines)
            if self.remove(task_id):
                expired.append(task_id)
        return expired

    def _fresh_top(self) -> Scheduler:
        top = Scheduler()
        for submitter, weight in self._shares.items():
            top.set_share(submitter, weight)
        return top

    def _forget_if_idle(self, submitter: str) -> None:
        """Drop the structures of a submitter with nothing queued; once nobody has anything queued,
        start the fair-share level afresh, so it remembers only submitters seen since (bounded
        memory whatever the number of identities; nobody banks credit while idle anyway)."""
        if not self._turns[submitter]:
            del self._turns[submitter]
            del self._subs[submitter]
            if not self._owner:
                self._top = self._fresh_top()
