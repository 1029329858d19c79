"""The kernel's prover conformance suite, run against MockProver."""

from __future__ import annotations

import pytest

from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.prover import ProverTests
from gaia_zk_mock import MockProver, Settings


class TestMockProver(ProverTests):
    @pytest.fixture
    def prover(self, node_context: NodeContext) -> MockProver:
        return MockProver(node_context.identity, Settings(simulate_time=False))
