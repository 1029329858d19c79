"""RAM facts and the measured copy bandwidth (STREAM's Copy, run as a wasm ``memory.copy``)."""

from __future__ import annotations

import psutil

from gaia_bench_psutil import compute
from gaia_bench_psutil.facts import entry, read
from gaia_core.plugin_api import Measurement


def facts() -> list[Measurement]:
    """Total and available RAM as the OS reports them."""
    return [
        read("ram.total_bytes", "B", "reported", lambda: psutil.virtual_memory().total),
        read("ram.available_bytes", "B", "reported", lambda: psutil.virtual_memory().available),
    ]


def bandwidth(kernels: compute.Kernels, plan: compute.Plan) -> Measurement:
    """Copy bandwidth in GB/s (bytes read + bytes written, 10^9), one thread."""
    rate = compute.single(kernels, compute.COPY, plan)
    return entry("ram.copy_gbps", round(rate.per_s / 1e9, 2), "GB/s")
