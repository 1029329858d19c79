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
that of its contents when the call began. Large inputs (1 MiB and up, or Merkle trees of 256 KiB
of leaves and up) are hashed on one pool of threads: as many as :func:`set_threads` asks for (the
node asks for the cores it offers), else as many as the process may use, capped either way by the
CPUs this process may run on and by ``GAIA_HASH_THREADS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from gaia_core._backend import load

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["BACKEND", "BACKEND_ERROR", "blake3_digest", "content_id", "merkle_root", "set_threads"]

_impl, BACKEND, BACKEND_ERROR = load("gaia_core.hashing", "gaia_core._reference.hashing")

blake3_digest: Callable[[Buffer], bytes] = _impl.blake3_digest
content_id: Callable[[Buffer], str] = _impl.content_id
merkle_root: Callable[[Iterable[Buffer]], bytes] = _impl.merkle_root


def set_threads(cores: int) -> int:
    """Size the hashing pool for a budget of ``cores`` (>= 1) and return its threads.

    1 means everything is hashed on the calling thread, as the Python backend always does.
    """
    if BACKEND == "native":
        return int(_impl.set_hash_threads(cores))
    return 1
