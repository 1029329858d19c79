"""The Merkle tree of a blob: leaf hashes of fixed-size chunks, the root, inclusion proofs and the blob id.

The tree is the one :func:`gaia_core.hashing.merkle_root` computes over the chunks (RFC 9162 shape,
BLAKE3, leaf = H(0x00 || chunk), node = H(0x01 || left || right), empty = H(b"")), built here from
the leaf hashes so that a blob is hashed one chunk at a time and never held whole. A chunk's leaf
hash is ``merkle_root([chunk])``: the native backend hashes it without a copy.

A blob's id is :func:`blob_id`: the content id of its size and root, so that a peer that names the
root and size of a blob proves both, and with them how many leaves every inclusion proof is checked
against (a proof of one leaf alone does not fix the number of leaves of its tree).
"""

from __future__ import annotations

from collections.abc import Sequence

from gaia_core.hashing import blake3_digest, content_id, merkle_root

#: Bytes per chunk (the last chunk of a blob may be shorter).
CHUNK_SIZE = 1 << 20
#: Bytes of one hash.
HASH_SIZE = 32


def chunk_count(size: int) -> int:
    """How many chunks a blob of ``size`` bytes has."""
    return -(-size // CHUNK_SIZE)


def chunk_length(size: int, index: int) -> int:
    """The length of chunk ``index`` of a blob of ``size`` bytes."""
    return min(CHUNK_SIZE, size - index * CHUNK_SIZE)


def blob_id(size: int, root: bytes) -> str:
    """The id of the blob of ``size`` bytes whose chunks' Merkle root is ``root``."""
    return content_id(b"gaia-blob\x00" + size.to_bytes(8, "big") + root)


def leaf_hash(chunk: bytes | bytearray | memoryview) -> bytes:
    """The leaf hash of one chunk."""
    return merkle_root([chunk])


def _node(left: bytes, right: bytes) -> bytes:
    return blake3_digest(b"\x01" + left + right)


class Tree:
    """Every level of the tree over ``leaves`` (leaf hashes), bottom-up; an odd last node is carried up."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            level = self.levels[-1]
            paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(paired + level[len(paired) * 2:])

    @property
    def root(self) -> bytes:
        """The root: equal to ``merkle_root`` of the chunks themselves."""
        return self.levels[-1][0] if self.levels[0] else blake3_digest(b"")

    def proof(self, index: int) -> list[bytes]:
        """The sibling hashes from leaf ``index`` up to the root."""
        if not 0 <= index < len(self.levels[0]):
            raise IndexError(f"chunk {index} is not in a tree of {len(self.levels[0])} chunks")
        path = []
        for level in self.levels[:-1]:
            if index % 2:
                path.append(level[index - 1])
            elif index + 1 < len(level):
                path.append(level[index + 1])
            index //= 2
        return path


def verify(root: bytes, count: int, index: int, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``leaf`` (a leaf hash) is leaf ``index`` of the ``count``-leaf tree whose root is ``root``."""
    if not 0 <= index < count or any(len(h) != HASH_SIZE for h in proof):
        return False
    path = iter(proof)
    digest, width = leaf, count
    while width > 1:  # halves each round
        if index % 2:
            digest = _node(next(path, b""), digest)
        elif index + 1 < width:
            digest = _node(digest, next(path, b""))
        index, width = index // 2, (width + 1) // 2
    return width == 1 and next(path, None) is None and digest == root
