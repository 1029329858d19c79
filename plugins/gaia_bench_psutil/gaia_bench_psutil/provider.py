"""The benchmark provider: capabilities report (cached), live samples and per-task accounting."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator

import psutil

from gaia_bench_psutil import compute, cpu, disk, memory
from gaia_bench_psutil.cache import FILENAME, ReportCache
from gaia_bench_psutil.energy import EnergyModel, PowerMeter, Rapl, TaskAccount, account, task_cost
from gaia_bench_psutil.facts import READ_ERRORS, entry, unknown
from gaia_bench_psutil.gpu import Gpus
from gaia_bench_psutil.sampler import Sampler
from gaia_bench_psutil.settings import Settings
from gaia_core.plugin_api import BenchmarkReport, Measurement, NodeContext, ResourceSample


class PsutilBenchmark:
    """Measures CPU, RAM, GPU, disk and energy with psutil, NVML, RAPL and wasmtime kernels.

    Besides the :class:`~gaia_core.roles.Benchmark` protocol it offers
    :meth:`account` and :meth:`meter` (per-task cost) and :meth:`start_sampler`
    (background sampling), which the node calls through the provider.
    """

    def __init__(self, context: NodeContext, *, nvml: object | None = None) -> None:
        self.context = context
        self.settings = Settings.from_config(context.config)
        self.logical_cores = psutil.cpu_count(logical=True) or os.cpu_count() or 1
        offered = context.config.node.cores
        self.cores = min(offered, self.logical_cores) if offered else self.logical_cores
        measured_under = json.dumps({"cores": self.cores, "cpu_tdp_w": self.settings.cpu_tdp_w,
                                     "watts_per_core": self.settings.watts_per_core,
                                     "powercap_root": str(self.settings.powercap_root)}, sort_keys=True)
        self.cache = ReportCache(context.home.cache_dir / FILENAME, self.settings.cache_max_age_s, measured_under)
        self.model = EnergyModel(self.settings.per_core_w(self.logical_cores), self.logical_cores)
        self.rapl = Rapl(self.settings.powercap_root)
        self.power = PowerMeter(self.rapl)
        self.gpus = Gpus(nvml)  # type: ignore[arg-type]
        self.process = psutil.Process()
        self._lock = threading.Lock()
        self._cpu_last = self._cpu_times()
        self._rss_read = (0.0, 0)  # (when, bytes): the meter's RSS, refreshed once per sampling interval
        self._sampler: Sampler | None = None

    # -- capabilities ---------------------------------------------------------------------

    def measure(self, *, quick: bool = False, refresh: bool = False) -> BenchmarkReport:
        """The capabilities report: cached when fresh (unless ``refresh``), else measured and cached."""
        if not refresh:
            cached = self.cache.load(quick=quick)
            if cached is not None:
                return cached
        report = self._measure(compute.QUICK if quick else compute.FULL)
        try:
            self.cache.save(report, quick=quick)
        except OSError as exc:
            self.context.log.warning("cannot cache the benchmark report at %s: %s", self.cache.path, exc)
        return report

    def _measure(self, plan: compute.Plan) -> BenchmarkReport:
        kernels = compute.Kernels()
        before = self.rapl.read_uj()
        started = time.monotonic()
        scores = cpu.scores(kernels, plan, self.cores)
        elapsed = time.monotonic() - started
        after = self.rapl.read_uj()
        entries = [*cpu.facts(), *scores, *memory.facts(), memory.bandwidth(kernels, plan),
                   *self.gpus.facts(), *disk.facts(self.context.home.cache_dir),
                   *self._power_entries(before, after, elapsed, scores)]
        return BenchmarkReport(tuple(entries))

    def _power_entries(self, before: list[int] | None, after: list[int] | None, elapsed: float,
                       scores: list[Measurement]) -> list[Measurement]:
        """CPU power while the compute scores ran (RAPL) or at full load (model), and GFLOP/s per watt."""
        if before is not None and after is not None and elapsed > 0:
            watts = round(self.rapl.delta_j(before, after) / elapsed, 2)
            power = entry("energy.cpu_power_w", watts, "W")
        else:
            watts = round(self.model.cpu_power_w(100.0 * self.cores / self.logical_cores), 2)
            power = entry("energy.cpu_power_w", watts, "W", "estimated", self.rapl.reason)
        gflops = next(e.value for e in scores if e.name == "cpu.gflops_all")
        if not isinstance(gflops, (int, float)):
            per_watt = unknown("energy.gflops_per_w", "cpu.gflops_all was not measured")
        elif watts > 0:
            per_watt = entry("energy.gflops_per_w", round(gflops / watts, 4), "GFLOP/s/W", power.source)
        else:
            per_watt = unknown("energy.gflops_per_w", "CPU power read as 0 W")
        per_core = entry("energy.watts_per_core", round(self.model.watts_per_core, 3), "W", "estimated",
                         "the energy model's constant (config: watts_per_core or cpu_tdp_w)")
        return [power, per_watt, per_core]

    # -- live sampling --------------------------------------------------------------------

    def _cpu_times(self) -> tuple[float, float] | None:
        try:
            t = psutil.cpu_times()
        except READ_ERRORS:
            return None
        idle = t.idle + getattr(t, "iowait", 0.0)
        return sum(t) - idle, idle

    def _cpu_percent(self) -> float | None:
        now = self._cpu_times()
        with self._lock:
            before, self._cpu_last = self._cpu_last, now
        if now is None or before is None:
            return None
        busy, total = now[0] - before[0], (now[0] + now[1]) - (before[0] + before[1])
        return None if total <= 0 else max(0.0, min(100.0, 100.0 * busy / total))

    def sample(self) -> ResourceSample:
        """One reading: CPU % since the previous sample, RAM, this process's RSS, GPU, power."""
        cpu_percent = self._cpu_percent()
        ram_used: int | None
        ram_total: int | None
        try:
            vm = psutil.virtual_memory()
            ram_used, ram_total = vm.total - vm.available, vm.total
        except READ_ERRORS:
            ram_used = ram_total = None
        rss = self._rss() or None
        gpu = self.gpus.live()
        cpu_w = self.power.power_w()
        cpu_source = "measured"
        if cpu_w is None and cpu_percent is not None:
            cpu_w, cpu_source = self.model.cpu_power_w(cpu_percent), "estimated"
        if cpu_w is None:
            power_w, source = gpu.power_w, "measured" if gpu.power_w is not None else "unknown"
        else:
            power_w, source = cpu_w + (gpu.power_w or 0.0), cpu_source
        return ResourceSample(
            cpu_percent=cpu_percent, ram_used_bytes=ram_used, ram_total_bytes=ram_total, rss_bytes=rss,
            gpu_util_percent=gpu.util_percent, vram_used_bytes=gpu.vram_used_bytes,
            vram_total_bytes=gpu.vram_total_bytes, power_w=power_w, power_source=source,
        )

    def start_sampler(self, interval_s: float | None = None) -> Sampler:
        """Start (once) and return the background sampler; ``[bench-psutil] sample_interval_s`` by default."""
        if self._sampler is None:
            self._sampler = Sampler(self.sample, interval_s or self.settings.sample_interval_s).start()
        return self._sampler

    # -- per-task accounting --------------------------------------------------------------

    def account(self, start: ResourceSample, end: ResourceSample, cpu_s: float,
                peak_memory_bytes: int = 0) -> TaskAccount:
        """The cost of a task that used ``cpu_s`` CPU seconds between samples ``start`` and ``end``."""
        if self._sampler is not None:
            peak_memory_bytes = max(peak_memory_bytes, self._sampler.peak_rss(start.at, end.at))
        return account(start, end, cpu_s, self.model, peak_memory_bytes)

    @contextlib.contextmanager
    def meter(self) -> Iterator[list[TaskAccount]]:
        """Measure the task run in this block on this thread; the list holds its TaskAccount afterwards.

        Energy comes from the RAPL counters read before and after the block when they are readable
        (``energy_source="measured"``), else from the energy model and the thread's CPU time
        (``"estimated"``), attributed to the task by its thread's CPU time. Cheap enough to wrap every
        task: no full sample is taken, and the process's RSS is read from ``/proc`` at most once per
        ``sample_interval_s`` (the peak is the larger of that reading and the sampler's in the window).

        Example::

            with provider.meter() as cost:
                result = runner.run(task)
            result = cost[0].apply(result)
        """
        found: list[TaskAccount] = []
        started, cpu0, before = time.time(), time.thread_time(), self.rapl.read_uj()
        try:
            yield found
        finally:
            cpu_s = time.thread_time() - cpu0
            ended, after = time.time(), self.rapl.read_uj()
            peak = self._recent_rss(ended)
            if self._sampler is not None:
                peak = max(peak, self._sampler.peak_rss(started, ended))
            found.append(task_cost(self.rapl, before, after, ended - started, cpu_s, self.model, peak))

    def _recent_rss(self, now: float) -> int:
        """This process's RSS read at most once per sampling interval (a /proc read costs tens of µs)."""
        at, rss = self._rss_read
        if now - at >= self.settings.sample_interval_s or now < at:
            rss = self._rss()
            self._rss_read = (now, rss)
        return rss

    def _rss(self) -> int:
        try:
            return self.process.memory_info().rss
        except READ_ERRORS:
            return 0

    def close(self) -> None:
        """Stop the sampler and release NVML."""
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        self.gpus.close()

