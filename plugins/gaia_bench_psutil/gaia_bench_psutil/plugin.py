"""Hook implementations of gaia-bench-psutil."""

from __future__ import annotations

from collections.abc import Iterator

from gaia_bench_psutil.provider import PsutilBenchmark
from gaia_core.plugin_api import BenchmarkSpec, hookimpl


@hookimpl
def gaia_benchmarks() -> Iterator[BenchmarkSpec]:
    """Register the ``psutil`` benchmark provider."""
    yield BenchmarkSpec(name="psutil", factory=PsutilBenchmark)
