"""GAIA's native hot path: BLAKE3 content ids, Merkle inclusion proofs and the task scheduler.

Everything here is implemented in Rust (``gaia_native._gaia_native``, built with PyO3 + maturin).
A pure-Python reference with the same API and results lives in ``gaia_core._reference``; the
public facades ``gaia_core.hashing`` and ``gaia_core.scheduling`` pick this module when it loads.
"""

from ._gaia_native import (
    Scheduler,
    __version__,
    blake3_digest,
    build_profile,
    content_id,
    content_id_file,
    content_ids,
    merkle_proof,
    merkle_root,
    merkle_root_chunks,
    merkle_verify,
)

__all__ = (
    "Scheduler",
    "__version__",
    "blake3_digest",
    "build_profile",
    "content_id",
    "content_id_file",
    "content_ids",
    "merkle_proof",
    "merkle_root",
    "merkle_root_chunks",
    "merkle_verify",
)
