"""Rate limits per connection: token buckets, bounded in the number of connections they remember."""

from __future__ import annotations

import collections
import time


class RateLimit:
    """Allows ``burst`` events at once per key, then ``rate`` per second; remembers at most ``max_keys`` keys.

    Used by the I/O thread only, so it takes no lock. A key forgotten (the least recently used,
    once more than ``max_keys`` are active) starts again with a full bucket.
    """

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: collections.OrderedDict[bytes, tuple[float, float]] = collections.OrderedDict()

    def allow(self, key: bytes, now: float | None = None) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty (the event is refused)."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed
