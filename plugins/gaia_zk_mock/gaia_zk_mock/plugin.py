"""Hook implementations of gaia-zk-mock: registers the SIMULATED ``mock-groth16`` prover."""

from __future__ import annotations

from collections.abc import Iterator

from gaia_core.plugin_api import ProverSpec, hookimpl
from gaia_zk_mock.prover import SCHEME, MockProver


@hookimpl
def gaia_provers() -> Iterator[ProverSpec]:
    """The mock-groth16 prover, marked simulated."""
    yield ProverSpec(scheme=SCHEME, factory=MockProver.from_context, simulated=True)
