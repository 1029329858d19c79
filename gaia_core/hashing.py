"""BLAKE3 content ids and Merkle inclusion proofs.

Backed by the Rust module ``gaia_native`` when it loads, else by the pure-Python reference in
``gaia_core._reference.hashing`` (same results, much slower) with a ``RuntimeWarning``.
``BACKEND`` says which is active ("native" or "python"); ``BACKEND_ERROR`` says why the native
module is not in use (``None`` when it is). Set ``GAIA_BACKEND=python`` to force the reference.

Content ids are the lowercase hex of the 32-byte BLAKE3 digest. Merkle trees follow RFC 9162
(split at the largest power of two below n) with BLAKE3 and domain separation:
leaf = BLAKE3(0x00 || leaf), node = BLAKE3(0x01 || left || right), empty tree = BLAKE3(b"").
"""

from __future__ import annotations

import os
import warnings

__all__ = [
    "BACKEND",
    "BACKEND_ERROR",
    "blake3_digest",
    "content_id",
    "content_id_file",
    "content_ids",
    "merkle_proof",
    "merkle_root",
    "merkle_root_chunks",
    "merkle_verify",
]

BACKEND: str
BACKEND_ERROR: str | None
_FORCED = os.environ.get("GAIA_BACKEND", "").strip().lower() == "python"

try:
    if _FORCED:
        raise ImportError("disabled by GAIA_BACKEND=python")
    from gaia_native import (
        blake3_digest,
        content_id,
        content_id_file,
        content_ids,
        merkle_proof,
        merkle_root,
        merkle_root_chunks,
        merkle_verify,
    )

    BACKEND, BACKEND_ERROR = "native", None
except Exception as exc:  # noqa: BLE001 - ImportError, or a broken/ABI-incompatible build
    from ._reference.hashing import (  # type: ignore[assignment]
        blake3_digest,
        content_id,
        content_id_file,
        content_ids,
        merkle_proof,
        merkle_root,
        merkle_root_chunks,
        merkle_verify,
    )

    BACKEND, BACKEND_ERROR = (
        "python",
        str(exc) if _FORCED else f"{type(exc).__name__}: {exc}",
    )
    if not _FORCED:
        warnings.warn(
            f"gaia_core.hashing: the native module gaia_native could not be loaded ({BACKEND_ERROR}); "
            "using the pure-Python reference, which gives the same results but is far slower. "
            "Fix: `pip install gaia-native` (or `make install` in a source checkout), "
            "or set GAIA_BACKEND=python to use the reference without this warning.",
            RuntimeWarning,
            stacklevel=2,
        )
