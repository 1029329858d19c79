"""Energy: Intel RAPL counters when readable, else an estimate from CPU use; per-task accounting.

Per task, :func:`task_cost` measures energy from the RAPL counters read just before and just after
the task (``energy_source="measured"``) and falls back to the estimate below (``"estimated"``).

The estimate (the documented model, see docs/benchmarking.md): a fully busy
logical core draws ``watts_per_core`` (default ``cpu_tdp_w / logical cores``),
so the CPU draws ``cpu_percent / 100 * cores * watts_per_core`` and a task
that used ``cpu_s`` seconds of CPU cost ``cpu_s * watts_per_core`` joules.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import attrs
from attrs import frozen

from gaia_bench_psutil.facts import READ_ERRORS, describe
from gaia_core.plugin_api import ResourceSample, TaskResult

_PACKAGE = re.compile(r"intel-rapl:\d+\Z")


class Rapl:
    """The package energy counters under ``/sys/class/powercap`` (``intel-rapl:N/energy_uj``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.reason = ""
        self._zones: list[tuple[Path, int]] = []
        try:
            zones = sorted(p for p in root.iterdir() if _PACKAGE.match(p.name))
            for zone in zones:
                wrap = int((zone / "max_energy_range_uj").read_text().strip())
                int((zone / "energy_uj").read_text().strip())  # readable now, or not at all
                self._zones.append((zone / "energy_uj", wrap))
        except READ_ERRORS as exc:
            self._zones = []
            self.reason = f"no readable RAPL counters under {root} ({type(exc).__name__})"
            return
        if not self._zones:
            self.reason = f"no RAPL package zones under {root}"

    @property
    def available(self) -> bool:
        """True when every package counter could be read."""
        return bool(self._zones)

    def read_uj(self) -> list[int] | None:
        """Each package's counter in microjoules, or None (and a reason) when absent or unreadable."""
        if not self._zones:
            return None
        try:
            return [int(path.read_text().strip()) for path, _ in self._zones]
        except READ_ERRORS as exc:
            self.reason = f"RAPL read failed ({describe(exc)})"
            return None

    def delta_j(self, before: list[int], after: list[int]) -> float:
        """Joules between two readings, allowing for counters that wrapped."""
        total = 0
        for (_, wrap), b, a in zip(self._zones, before, after, strict=True):
            total += a - b if a >= b else a + wrap - b
        return total / 1e6


class PowerMeter:
    """CPU power from RAPL deltas between calls; thread-safe."""

    def __init__(self, rapl: Rapl) -> None:
        self.rapl = rapl
        self._lock = threading.Lock()
        self._last = (time.monotonic(), rapl.read_uj()) if rapl.available else None

    def power_w(self) -> float | None:
        """Average CPU package power since the previous call, or None when RAPL can't be read."""
        with self._lock:
            if self._last is None:
                return None
            now, reading = time.monotonic(), self.rapl.read_uj()
            then, before = self._last
            if reading is None or before is None:
                self._last = None
                return None
            self._last = (now, reading)
        return self.rapl.delta_j(before, reading) / max(now - then, 1e-6)


@frozen
class EnergyModel:
    """The estimate used where nothing measures energy."""

    watts_per_core: float
    cores: int

    def cpu_power_w(self, cpu_percent: float) -> float:
        """Estimated CPU power at machine-wide utilisation ``cpu_percent`` (0-100)."""
        return cpu_percent / 100.0 * self.cores * self.watts_per_core

    def task_energy_j(self, cpu_s: float) -> float:
        """Estimated energy of ``cpu_s`` seconds of one core's work."""
        return cpu_s * self.watts_per_core


@frozen
class TaskAccount:
    """What one task cost: CPU time, peak memory and energy (with its source)."""

    cpu_s: float
    wall_s: float
    peak_memory_bytes: int
    energy_j: float | None
    energy_source: str

    def apply(self, result: TaskResult) -> TaskResult:
        """``result`` with these costs attached (a runner's own larger peak memory is kept)."""
        return attrs.evolve(result, cpu_s=self.cpu_s, peak_memory_bytes=max(result.peak_memory_bytes,
                                                                             self.peak_memory_bytes),
                            energy_j=self.energy_j, energy_source=self.energy_source)


def account(start: ResourceSample, end: ResourceSample, cpu_s: float, model: EnergyModel,
            peak_memory_bytes: int = 0) -> TaskAccount:
    """The cost of a task that used ``cpu_s`` CPU seconds between samples ``start`` and ``end``.

    Energy is *measured* when both samples carry measured power: the machine's
    energy over the interval (mean power x wall time) times the task's share
    of the machine's core-seconds. Otherwise it is *estimated* by ``model``.
    Peak memory is the largest of the samples' RSS and ``peak_memory_bytes``.
    """
    wall_s = max(0.0, end.at - start.at)
    cpu_s = max(0.0, cpu_s)
    peak = max(peak_memory_bytes, start.rss_bytes or 0, end.rss_bytes or 0)
    if (start.power_source == end.power_source == "measured" and start.power_w is not None
            and end.power_w is not None and wall_s > 0):
        share = min(1.0, cpu_s / (wall_s * model.cores))
        energy, source = (start.power_w + end.power_w) / 2 * wall_s * share, "measured"
    else:
        energy, source = model.task_energy_j(cpu_s), "estimated"
    return TaskAccount(cpu_s=cpu_s, wall_s=wall_s, peak_memory_bytes=peak, energy_j=energy, energy_source=source)


def task_cost(rapl: Rapl, before: list[int] | None, after: list[int] | None, wall_s: float, cpu_s: float,
              model: EnergyModel, peak_memory_bytes: int = 0) -> TaskAccount:
    """The cost of a task that used ``cpu_s`` CPU seconds over ``wall_s`` seconds.

    Energy is *measured* when the RAPL counters were read both ``before`` and ``after`` the task:
    the packages' energy over the interval times the task's share of the machine's core-seconds.
    Otherwise it is *estimated* by ``model`` from ``cpu_s``.
    """
    wall_s, cpu_s = max(0.0, wall_s), max(0.0, cpu_s)
    if before is not None and after is not None and wall_s > 0:
        share = min(1.0, cpu_s / (wall_s * model.cores))
        energy, source = rapl.delta_j(before, after) * share, "measured"
    else:
        energy, source = model.task_energy_j(cpu_s), "estimated"
    return TaskAccount(cpu_s=cpu_s, wall_s=wall_s, peak_memory_bytes=peak_memory_bytes, energy_j=energy,
                       energy_source=source)
