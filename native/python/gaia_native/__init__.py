"""GAIA's native hot path: BLAKE3 content ids, Merkle roots, the task scheduler and tensor kernels.

Everything here is implemented in Rust (``gaia_native._gaia_native``, built with PyO3 + maturin).
The public facades ``gaia_core.hashing`` and ``gaia_core.scheduling`` pick this module when it
loads, else their Python backends in ``gaia_core._reference`` (same API and results).
"""

from ._gaia_native import (
    Scheduler,
    __version__,
    blake3_digest,
    build_profile,
    content_id,
    merkle_root,
    set_hash_threads,
    tensor_call,
    tensor_paths,
    tensor_signatures,
)

__all__ = (
    "Scheduler",
    "__version__",
    "blake3_digest",
    "build_profile",
    "content_id",
    "merkle_root",
    "set_hash_threads",
    "tensor_call",
    "tensor_paths",
    "tensor_signatures",
)
