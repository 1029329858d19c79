"""Run only when idle: whether other programs keep this machine busy (BOINC's "suspend when non-BOINC CPU usage
is above N %").

The node feeds :class:`IdleWatch` each live sample of the machine's CPU use (from the benchmark role); the watch
takes away what the node's own process used over the same interval (``os.times``), and calls the machine busy
while the rest, the CPU other programs use, is above ``[node] busy_percent``. Busy holds for
:data:`HOLD_S` after the last busy sample, so a machine whose load comes and goes does not flap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

#: Seconds the machine stays "busy" after the last sample over the threshold.
HOLD_S = 10.0


def own_cpu_seconds() -> float:
    """CPU seconds this process (every thread, and children it waited for) has used."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class IdleWatch:
    """Tells whether other programs use more than ``busy_percent`` of this machine's CPU (0 turns it off)."""

    def __init__(self, busy_percent: int, *, cpus: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 own_cpu: Callable[[], float] = own_cpu_seconds) -> None:
        self.busy_percent = busy_percent
        self._cpus = cpus or os.cpu_count() or 1
        self._clock, self._own_cpu = clock, own_cpu
        self._last: tuple[float, float] | None = None  # (clock, own CPU seconds) at the previous sample
        self._busy_until = 0.0
        self._said = False  # the state observe() last reported
        self.others_percent: float | None = None  # the last reading of the CPU other programs use

    def observe(self, machine_percent: float | None) -> bool | None:
        """Take one sample of the whole machine's CPU use (0-100); True when it turned busy, False when it
        turned idle, None when nothing changed (or the watch is off, or no reading is available)."""
        if not self.busy_percent or machine_percent is None:
            return None
        now, own = self._clock(), self._own_cpu()
        last, self._last = self._last, (now, own)
        if last is None or now <= last[0]:
            return None
        own_percent = 100.0 * (own - last[1]) / (now - last[0]) / self._cpus
        self.others_percent = max(0.0, machine_percent - own_percent)
        if self.others_percent > self.busy_percent:
            self._busy_until = now + HOLD_S
        is_busy = self.busy()
        if is_busy == self._said:
            return None
        self._said = is_busy
        return is_busy

    def busy(self) -> bool:
        """Whether tasks should wait: other programs were over the threshold within the last :data:`HOLD_S`."""
        return bool(self.busy_percent) and self._clock() < self._busy_until
