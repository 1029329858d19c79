"""The Python hashing backend: BLAKE3 from the ``blake3`` wheel (blake3-py), Merkle roots in Python.

Same names, signatures and results as ``gaia_native``'s hashing; used when the native module cannot
load. BLAKE3 itself comes from blake3-py, a maintained binding of the official Rust implementation,
so content ids stay fast; only the Merkle tree is walked in Python.

Any C-contiguous buffer is accepted. ``bytes`` are hashed as they are; any other buffer is copied
first, so no other thread can change it while it is hashed (blake3-py releases the GIL on large
inputs).

Merkle trees follow RFC 9162 section 2.1 with BLAKE3 in place of SHA-256 and its domain
separation: leaf = BLAKE3(0x00 || leaf), node = BLAKE3(0x01 || left || right), the tree is split
at the largest power of two smaller than the leaf count, and the empty tree's root is BLAKE3(b"").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from blake3 import blake3

if TYPE_CHECKING:  # collections.abc.Buffer is Python 3.12+
    from typing_extensions import Buffer

__all__ = ["blake3_digest", "content_id", "merkle_root"]


def _frozen(data: Buffer) -> bytes:
    """``data`` when it is ``bytes``, else a copy of its bytes taken now."""
    if isinstance(data, bytes):
        return data
    view = memoryview(data)  # TypeError for objects without the buffer protocol
    if not view.c_contiguous:
        raise BufferError("expected a bytes-like object with one contiguous buffer, got a strided view")
    return view.tobytes()


def blake3_digest(data: Buffer) -> bytes:
    """BLAKE3 digest (32 bytes) of a bytes-like object."""
    return blake3(_frozen(data)).digest()


def content_id(data: Buffer) -> str:
    """Content id: lowercase hex of the BLAKE3 digest (64 characters)."""
    return blake3(_frozen(data)).hexdigest()


def merkle_root(leaves: Iterable[Buffer]) -> bytes:
    """RFC 9162-shaped Merkle root with BLAKE3 (see the module docstring); 32 bytes."""
    level = [blake3(b"\x00").update(_frozen(leaf)).digest() for leaf in leaves]
    if not level:
        return blake3(b"").digest()
    while len(level) > 1:  # bottom-up; an odd last node is carried up, as RFC 9162's split implies
        paired = [blake3(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = paired + level[len(paired) * 2 :]
    return level[0]
