"""Pure-Python reference of ``gaia_native.Scheduler`` (same API, same pop order, same errors).

This is the parity oracle: the golden scenarios in ``native/tests/golden.json`` are generated from
it, and the tests replay random operation lists on it and on the native scheduler and require the
same answers. It is also the fallback when the native module cannot load. Written for clarity, not
speed: each pop scans the submitters of the top priority class.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Iterable

__all__ = ["Scheduler"]

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class _Item:
    __slots__ = ("cost", "deadline", "key", "priority", "seq", "submitter")

    def __init__(
        self,
        key: str,
        priority: int,
        deadline: float,
        submitter: str,
        seq: int,
        cost: float,
    ) -> None:
        self.key, self.priority, self.deadline = key, priority, deadline
        self.submitter, self.seq, self.cost = submitter, seq, cost

    def order(self) -> tuple[float, int]:
        return (self.deadline, self.seq)


class _Submitter:
    __slots__ = ("queued", "vtime", "weight")

    def __init__(self) -> None:
        self.weight = 1.0
        self.vtime = 0.0
        self.queued = 0


def _str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    return value


def _float(name: str, value: object) -> float:
    if isinstance(
        value, (str, bytes, bytearray)
    ):  # float("1.5") parses; the native module refuses
        raise TypeError(f"{name} must be a real number, not {type(value).__name__}")
    return float(value)  # type: ignore[arg-type]


def _priority(value: object) -> int:
    p = operator.index(value)  # type: ignore[arg-type]
    if not _I64_MIN <= p <= _I64_MAX:
        raise OverflowError(f"priority {p} does not fit in a signed 64-bit integer")
    return p


class Scheduler:
    """Priority / EDF / fair-share / FIFO scheduler keyed by task id (``str``).

    Pop order:

    1. Highest ``priority`` first; priority classes are strict.
    2. Inside the top class, fair share among the submitters that have items there: the submitter
       with the smallest virtual time (served / weight) goes next, and each pop adds
       ``cost / weight`` to its virtual time. A submitter that becomes active (from no queued item
       to one, in any class) starts at ``max(own virtual time, smallest virtual time among the
       active submitters)``, so nobody banks credit while idle (stride / virtual-time scheduling,
       like BOINC's resource-share debt). Ties between submitters: earliest deadline of their head
       item, then earliest arrival.
    3. Inside one submitter and class: earliest deadline first (``None`` = +inf), then FIFO.

    ``remove`` and ``pop_expired`` do not charge the submitter.
    """

    def __init__(self) -> None:
        self._items: dict[str, _Item] = {}
        # priority -> submitter -> items sorted by (deadline, seq)
        self._classes: dict[int, dict[str, list[tuple[float, int, str]]]] = {}
        self._subs: dict[str, _Submitter] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._items

    def __repr__(self) -> str:
        return f"<gaia_core._reference.Scheduler with {len(self)} queued>"

    def _sub(self, name: str) -> _Submitter:
        sub = self._subs.get(name)
        if sub is None:
            sub = self._subs[name] = _Submitter()
        return sub

    @staticmethod
    def _check(key: str, deadline: float | None, cost: float) -> float:
        d = math.inf if deadline is None else float(deadline)
        if math.isnan(d):
            raise ValueError(
                f"task {key!r}: deadline must be a number or None, got {d}"
            )
        if not math.isfinite(cost) or cost < 0.0:
            raise ValueError(f"task {key!r}: cost must be finite and >= 0, got {cost}")
        return d

    def push(
        self,
        key: str,
        priority: int = 0,
        deadline: float | None = None,
        submitter: str = "",
        cost: float = 1.0,
    ) -> None:
        """Queue ``key``. ValueError if it is still queued, the deadline is NaN or the cost is not
        finite and >= 0."""
        key, priority = _str("key", key), _priority(priority)
        deadline = None if deadline is None else _float("deadline", deadline)
        submitter, cost = _str("submitter", submitter), _float("cost", cost)
        if key in self._items:
            raise ValueError(
                f"task {key!r} is already queued; remove() it first or use a different key"
            )
        self._insert(key, priority, self._check(key, deadline, cost), submitter, cost)

    def push_many(self, items: Iterable[tuple[str, int, float | None, str]]) -> None:
        """Queue many ``(key, priority, deadline, submitter)`` tuples (cost 1.0).
        All-or-nothing: on a duplicate or invalid item nothing is queued."""
        batch = []
        for item in items:
            if not isinstance(item, tuple) or len(item) != 4:
                raise TypeError(
                    f"push_many expects (key, priority, deadline, submitter) tuples, got {item!r}"
                )
            key, priority, deadline, submitter = item
            batch.append(
                (
                    _str("key", key),
                    _priority(priority),
                    None if deadline is None else _float("deadline", deadline),
                    _str("submitter", submitter),
                )
            )
        seen: set[str] = set()
        checked = []
        for key, priority, deadline, submitter in batch:
            if key in self._items or key in seen:
                raise ValueError(
                    f"task {key!r} is already queued; remove() it first or use a different key"
                )
            seen.add(key)
            checked.append((key, priority, self._check(key, deadline, 1.0), submitter))
        for key, priority, deadline, submitter in checked:
            self._insert(key, priority, deadline, submitter, 1.0)

    def _insert(
        self, key: str, priority: int, deadline: float, submitter: str, cost: float
    ) -> None:
        sub = self._sub(submitter)
        if sub.queued == 0:
            active = [s.vtime for s in self._subs.values() if s.queued > 0]
            if active and min(active) > sub.vtime:
                sub.vtime = min(active)
        sub.queued += 1
        item = _Item(key, priority, deadline, submitter, self._seq, cost)
        self._seq += 1
        self._items[key] = item
        queue = self._classes.setdefault(priority, {}).setdefault(submitter, [])
        bisect.insort(queue, (deadline, item.seq, key))

    def _detach(self, item: _Item) -> None:
        del self._items[item.key]
        cls = self._classes[item.priority]
        queue = cls[item.submitter]
        queue.remove((item.deadline, item.seq, item.key))
        if not queue:
            del cls[item.submitter]
            if not cls:
                del self._classes[item.priority]
        self._subs[item.submitter].queued -= 1

    def pop(self) -> str | None:
        """Remove and return the next task id, or None when empty."""
        if not self._classes:
            return None
        cls = self._classes[max(self._classes)]
        name = min(cls, key=lambda s: (self._subs[s].vtime, cls[s][0][0], cls[s][0][1]))
        item = self._items[cls[name][0][2]]
        self._detach(item)
        sub = self._subs[name]
        sub.vtime = sub.vtime + item.cost / sub.weight
        return item.key

    def pop_many(self, n: int) -> list[str]:
        """Remove and return up to ``n`` task ids in pop order."""
        out: list[str] = []
        for _ in range(max(0, operator.index(n))):
            key = self.pop()
            if key is None:
                break
            out.append(key)
        return out

    def remove(self, key: str) -> bool:
        """Cancel ``key``; True when it was queued."""
        item = self._items.get(_str("key", key))
        if item is None:
            return False
        self._detach(item)
        return True

    def pop_expired(self, now: float) -> list[str]:
        """Remove and return every item whose deadline is < ``now``, earliest deadline first."""
        now = _float("now", now)
        expired = sorted(
            (i for i in self._items.values() if i.deadline < now), key=_Item.order
        )
        for item in expired:
            self._detach(item)
        return [item.key for item in expired]

    def set_share(self, submitter: str, weight: float) -> None:
        """Set a submitter's share weight (finite, > 0; default 1.0)."""
        submitter, weight = _str("submitter", submitter), _float("weight", weight)
        if not (math.isfinite(weight) and weight > 0.0):
            raise ValueError(
                f"submitter {submitter!r}: share weight must be finite and > 0, got {weight}"
            )
        self._sub(submitter).weight = weight

    def served(self, submitter: str) -> float:
        """The submitter's virtual service time (sum of cost / weight, plus catch-up on activation)."""
        sub = self._subs.get(_str("submitter", submitter))
        return 0.0 if sub is None else sub.vtime
