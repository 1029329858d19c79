"""gaia-bench-psutil meets the kernel's benchmark contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gaia_bench_psutil import PsutilBenchmark
from gaia_bench_psutil.cpu import REFERENCE_GFLOPS
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.benchmark import BenchmarkTests


class TestPsutilBenchmark(BenchmarkTests):
    @pytest.fixture
    def provider(self, node_context: NodeContext) -> Iterator[PsutilBenchmark]:
        provider = PsutilBenchmark(node_context)
        yield provider
        provider.close()


def test_the_score_is_the_all_core_matmul_in_reference_cores(psutil_benchmark: PsutilBenchmark) -> None:
    report = psutil_benchmark.measure(quick=True)
    assert report.get("score") == pytest.approx(report.get("cpu.gflops_all") / REFERENCE_GFLOPS, abs=2e-3)
    assert report.summary()["score"] == report.score > 0
