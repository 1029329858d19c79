"""Sampler overhead at 1 Hz, `gaia bench` durations, and run-to-run spread of the scores.

Prints ``measure: gaia=X baseline=Y ratio=Z`` lines:

* sampler_cpu_pct_of_core: CPU time of gaia-bench-psutil's sampler thread per
  second of wall time (as % of one core) at 1 Hz, against a bare psutil loop
  reading the same things (cpu_percent, virtual_memory, process RSS) at 1 Hz,
  both running at once. Target: <= 1 %.
* bench_quick_s / bench_full_s: mean duration of a measured (not cached) run;
  the baseline is the issue's budget (3 s, 15 s), not a measurement.
* spread_pct.<score>: (max - min) / mean over the full runs; the baseline is
  the 10 % target.

Run: .venv/bin/python benchmarks/bench_monitor.py  (about 60 s on 2 cores).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil

from gaia_bench_psutil import PsutilBenchmark
from gaia_core.config import Config, Home
from gaia_core.roles import NodeContext

OVERHEAD_S = 10.0
RUNS = 3
SCORES = ("cpu.gflops_1core", "cpu.gflops_all", "cpu.int_gops_1core", "cpu.int_gops_all", "ram.copy_gbps")


def thread_cpu_s(ident: int) -> float:
    """CPU seconds used so far by the thread with pthread id ``ident``."""
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


def line(measure: str, gaia: float, baseline: float) -> None:
    ratio = gaia / baseline if baseline else float("inf")
    print(f"{measure}: gaia={gaia:.4g} baseline={baseline:.4g} ratio={ratio:.3g}", flush=True)


def bare_psutil_loop(stop: threading.Event) -> None:
    """The baseline: what a minimal monitor reads, once a second."""
    process = psutil.Process()
    while not stop.is_set():
        psutil.cpu_percent(interval=None)
        psutil.virtual_memory()
        process.memory_info()
        stop.wait(1.0)


def overhead(provider: PsutilBenchmark) -> None:
    stop = threading.Event()
    bare = threading.Thread(target=bare_psutil_loop, args=(stop,), daemon=True)
    bare.start()
    sampler = provider.start_sampler(interval_s=1.0)
    start = time.monotonic()
    gaia0, bare0 = thread_cpu_s(sampler.ident), thread_cpu_s(bare.ident)
    time.sleep(OVERHEAD_S)
    elapsed = time.monotonic() - start
    gaia_pct = (thread_cpu_s(sampler.ident) - gaia0) / elapsed * 100
    bare_pct = (thread_cpu_s(bare.ident) - bare0) / elapsed * 100
    stop.set()
    bare.join()
    provider.close()
    line("sampler_cpu_pct_of_core", gaia_pct, bare_pct)


def durations_and_spread(provider: PsutilBenchmark) -> None:
    for quick, budget in ((True, 3.0), (False, 15.0)):
        took, reports = [], []
        for _ in range(RUNS):
            start = time.perf_counter()
            reports.append(provider.measure(quick=quick, refresh=True))
            took.append(time.perf_counter() - start)
        line(f"bench_{'quick' if quick else 'full'}_s", statistics.mean(took), budget)
    for score in SCORES:
        values = [float(r.get(score)) for r in reports]
        spread = (max(values) - min(values)) / statistics.mean(values) * 100
        line(f"spread_pct.{score}", spread, 10.0)


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        context = NodeContext(config=Config(), home=Home(Path(home)))
        overhead(PsutilBenchmark(context))
        durations_and_spread(PsutilBenchmark(context))


if __name__ == "__main__":
    main()
