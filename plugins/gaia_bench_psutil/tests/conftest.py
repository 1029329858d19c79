"""Fixtures of the gaia-bench-psutil tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gaia_bench_psutil import PsutilBenchmark
from gaia_core.roles import NodeContext

pytest_plugins = ["gaia_core.testing.fixtures"]


@pytest.fixture
def psutil_benchmark(node_context: NodeContext) -> Iterator[PsutilBenchmark]:
    """The provider on this machine, with the test's isolated home."""
    provider = PsutilBenchmark(node_context)
    yield provider
    provider.close()
