"""CPU facts (model, cores, frequency) and the measured compute scores."""

from __future__ import annotations

import platform
from pathlib import Path

import psutil

from gaia_bench_psutil import compute
from gaia_bench_psutil.facts import entry, read
from gaia_core.plugin_api import SCORE, SCORE_UNIT, Measurement

CPUINFO = Path("/proc/cpuinfo")
#: GFLOP/s of one reference core in the matmul kernel: the unit of the role's score. A round figure
#: near one core of the 2-core development VM (Intel Xeon, KVM), which measures 2.5-3.3 under test load.
REFERENCE_GFLOPS = 3.0


def model_name(cpuinfo: Path = CPUINFO) -> str:
    """The CPU model from /proc/cpuinfo, else what the platform module says."""
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Processor", "cpu model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def facts() -> list[Measurement]:
    """Model, physical and logical cores, and current/maximum frequency, as the OS reports them."""
    return [
        read("cpu.model", "", "reported", model_name),
        read("cpu.cores_physical", "", "reported", lambda: psutil.cpu_count(logical=False)),
        read("cpu.cores_logical", "", "reported", lambda: psutil.cpu_count(logical=True)),
        read("cpu.freq_mhz", "MHz", "reported", lambda: round(psutil.cpu_freq().current, 1)),
        read("cpu.freq_max_mhz", "MHz", "reported", lambda: round(psutil.cpu_freq().max, 1) or None),
    ]


def score(gflops_all: float) -> Measurement:
    """The role's score: all-core matmul GFLOP/s in reference cores (:data:`REFERENCE_GFLOPS` each), above 0."""
    return entry(SCORE, max(round(gflops_all / REFERENCE_GFLOPS, 3), 0.001), SCORE_UNIT)


def scores(kernels: compute.Kernels, plan: compute.Plan, cores: int) -> list[Measurement]:
    """GFLOP/s (f32 SIMD matmul) and integer GOP/s on one core and on ``cores`` threads, fuel/s, and the score."""
    flops_1 = compute.single(kernels, compute.MATMUL, plan)
    flops_n = compute.parallel(kernels, compute.MATMUL, plan, cores)
    int_1 = compute.single(kernels, compute.INTMIX, plan)
    int_n = compute.parallel(kernels, compute.INTMIX, plan, cores)
    found = [
        entry("cpu.cores_offered", cores, "", "reported"),
        entry("cpu.gflops_1core", round(flops_1.per_s / 1e9, 3), "GFLOP/s"),
        entry("cpu.gflops_all", round(flops_n.per_s / 1e9, 3), "GFLOP/s"),
        entry("cpu.int_gops_1core", round(int_1.per_s / 1e9, 3), "GOP/s"),
        entry("cpu.int_gops_all", round(int_n.per_s / 1e9, 3), "GOP/s"),
        score(flops_n.per_s / 1e9),
    ]
    if flops_1.fuel_per_s is not None:
        found.append(entry("cpu.fuel_per_s_1core", round(flops_1.fuel_per_s), "fuel/s"))
    return found
