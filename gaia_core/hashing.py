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

from gaia_core._backend import load

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

_impl, BACKEND, BACKEND_ERROR = load("gaia_core.hashing", "gaia_core._reference.hashing")

blake3_digest = _impl.blake3_digest
content_id = _impl.content_id
content_id_file = _impl.content_id_file
content_ids = _impl.content_ids
merkle_proof = _impl.merkle_proof
merkle_root = _impl.merkle_root
merkle_root_chunks = _impl.merkle_root_chunks
merkle_verify = _impl.merkle_verify
