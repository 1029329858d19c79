"""BLAKE3 content ids and Merkle roots.

Backed by the Rust module ``gaia_native`` when it loads, else by ``gaia_core._reference.hashing``
(BLAKE3 from the ``blake3`` wheel, the Merkle tree in Python: same results) with a
``RuntimeWarning``. ``BACKEND`` says which is active ("native" or "python"); ``BACKEND_ERROR``
says why the native module is not in use (``None`` when it is). Set ``GAIA_BACKEND=python`` to
force the Python backend.

Content ids are the lowercase hex of the 32-byte BLAKE3 digest. Merkle trees follow RFC 9162
(split at the largest power of two below n) with BLAKE3 and domain separation:
leaf = BLAKE3(0x00 || leaf), node = BLAKE3(0x01 || left || right), empty tree = BLAKE3(b"").

Inputs are any C-contiguous buffers. Large ``bytes`` are hashed with the GIL released; any other
buffer (bytearray, memoryview, ...) is hashed with the GIL held or copied first, so the digest is
that of its contents when the call began. Large inputs (1 MiB and up) are hashed on one pool of
threads, of as many threads as the process may use, capped by ``GAIA_HASH_THREADS``.
"""

from __future__ import annotations

from gaia_core._backend import load

__all__ = ["BACKEND", "BACKEND_ERROR", "blake3_digest", "content_id", "merkle_root"]

_impl, BACKEND, BACKEND_ERROR = load("gaia_core.hashing", "gaia_core._reference.hashing")

blake3_digest = _impl.blake3_digest
content_id = _impl.content_id
merkle_root = _impl.merkle_root
