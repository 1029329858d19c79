"""gaia-bench-psutil meets the kernel's benchmark contract."""

from __future__ import annotations

from typing import Iterator

import pytest

from gaia_bench_psutil import PsutilBenchmark
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.benchmark import BenchmarkTests


class TestPsutilBenchmark(BenchmarkTests):
    @pytest.fixture
    def provider(self, node_context: NodeContext) -> Iterator[PsutilBenchmark]:
        provider = PsutilBenchmark(node_context)
        yield provider
        provider.close()
