"""gaia-zk-mock: a SIMULATED zero-knowledge prover for GAIA (proves nothing cryptographically about execution)."""

from gaia_zk_mock.prover import SCHEME, MockProver
from gaia_zk_mock.settings import Settings

__all__ = ["SCHEME", "MockProver", "Settings"]
