"""The kernel's prover conformance suite, run against MockProver."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.prover import ProverTests
from gaia_zk_mock import MockProver, Settings


def _quick_prover(context: NodeContext) -> MockProver:
    """MockProver as a node builds it, without the simulated proving delay."""
    return MockProver(context.identity, Settings(simulate_time=False))


class TestMockProver(ProverTests):
    @pytest.fixture
    def make_prover(self) -> Callable[[NodeContext], MockProver]:
        return _quick_prover
