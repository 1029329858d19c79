"""Pure-Python reference of ``gaia_native``'s hashing: BLAKE3, content ids and Merkle proofs.

Same names, signatures and results as the Rust module; used when the native module cannot load and
by the parity tests. BLAKE3 here is a direct port of the reference implementation in the BLAKE3
specification (https://github.com/BLAKE3-team/BLAKE3-specs), hash mode only. It is slow (about
1 MB/s): fine for tests and small inputs, not for production volumes.

Merkle trees follow RFC 9162 section 2.1 with BLAKE3 in place of SHA-256 and its domain
separation: leaf = BLAKE3(0x00 || leaf), node = BLAKE3(0x01 || left || right), the tree is split
at the largest power of two smaller than the leaf count, and the empty tree's root is BLAKE3(b"").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # collections.abc.Buffer is Python 3.12+
    from typing_extensions import Buffer

__all__ = [
    "blake3_digest",
    "content_id",
    "content_id_file",
    "content_ids",
    "merkle_proof",
    "merkle_root",
    "merkle_root_chunks",
    "merkle_verify",
]

# --------------------------------------------------------------------------- BLAKE3 (spec reference)
_OUT_LEN = 32
_BLOCK_LEN = 64
_CHUNK_LEN = 1024
_CHUNK_START = 1 << 0
_CHUNK_END = 1 << 1
_PARENT = 1 << 2
_ROOT = 1 << 3
_M32 = 0xFFFFFFFF
_IV = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip
_MSG_PERMUTATION = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
# The seven rounds' message word order, i.e. the permutation applied 0..6 times.
_SCHEDULE: list[tuple[int, ...]] = []
_order = tuple(range(16))
for _ in range(7):
    _SCHEDULE.append(_order)
    _order = tuple(_order[i] for i in _MSG_PERMUTATION)
del _order
_G_POSITIONS = (
    (0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),  # columns
    (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14),  # diagonals
)  # fmt: skip


def _compress(
    cv: Sequence[int], block: Sequence[int], counter: int, block_len: int, flags: int
) -> list[int]:
    """The BLAKE3 compression function: 16 output words."""
    s = [*cv, *_IV[:4], counter & _M32, (counter >> 32) & _M32, block_len, flags]
    for order in _SCHEDULE:
        m = [block[i] for i in order]
        for j, (a, b, c, d) in enumerate(_G_POSITIONS):
            mx, my = m[2 * j], m[2 * j + 1]
            s[a] = (s[a] + s[b] + mx) & _M32
            x = s[d] ^ s[a]
            s[d] = ((x >> 16) | (x << 16)) & _M32
            s[c] = (s[c] + s[d]) & _M32
            x = s[b] ^ s[c]
            s[b] = ((x >> 12) | (x << 20)) & _M32
            s[a] = (s[a] + s[b] + my) & _M32
            x = s[d] ^ s[a]
            s[d] = ((x >> 8) | (x << 24)) & _M32
            s[c] = (s[c] + s[d]) & _M32
            x = s[b] ^ s[c]
            s[b] = ((x >> 7) | (x << 25)) & _M32
    for i in range(8):
        s[i] ^= s[i + 8]
        s[i + 8] ^= cv[i]
    return s


def _words(block: bytes) -> list[int]:
    """A block (up to 64 bytes) as 16 little-endian words, zero-padded."""
    return [
        int.from_bytes(block[i : i + 4].ljust(4, b"\0"), "little")
        for i in range(0, 64, 4)
    ]


class _Output:
    __slots__ = ("block", "block_len", "counter", "cv", "flags")

    def __init__(
        self,
        cv: Sequence[int],
        block: list[int],
        counter: int,
        block_len: int,
        flags: int,
    ) -> None:
        self.cv, self.block, self.counter, self.block_len, self.flags = (
            cv,
            block,
            counter,
            block_len,
            flags,
        )

    def chaining_value(self) -> list[int]:
        return _compress(self.cv, self.block, self.counter, self.block_len, self.flags)[
            :8
        ]

    def root_bytes(self) -> bytes:
        # Output block 0 is enough for the default 32-byte digest.
        words = _compress(self.cv, self.block, 0, self.block_len, self.flags | _ROOT)[
            :8
        ]
        return b"".join(w.to_bytes(4, "little") for w in words)


class _ChunkState:
    __slots__ = ("block", "blocks_compressed", "chunk_counter", "cv")

    def __init__(self, key: Sequence[int], chunk_counter: int) -> None:
        self.cv = list(key)
        self.chunk_counter = chunk_counter
        self.block = b""
        self.blocks_compressed = 0

    def __len__(self) -> int:
        return _BLOCK_LEN * self.blocks_compressed + len(self.block)

    def _start_flag(self) -> int:
        return _CHUNK_START if self.blocks_compressed == 0 else 0

    def update(self, data: bytes) -> None:
        while data:
            # A full block is compressed only once more input arrives: the last block is special.
            if len(self.block) == _BLOCK_LEN:
                self.cv = _compress(
                    self.cv,
                    _words(self.block),
                    self.chunk_counter,
                    _BLOCK_LEN,
                    self._start_flag(),
                )[:8]
                self.blocks_compressed += 1
                self.block = b""
            take = min(_BLOCK_LEN - len(self.block), len(data))
            self.block += data[:take]
            data = data[take:]

    def output(self) -> _Output:
        flags = self._start_flag() | _CHUNK_END
        return _Output(
            self.cv, _words(self.block), self.chunk_counter, len(self.block), flags
        )


def _parent_output(left: list[int], right: list[int]) -> _Output:
    return _Output(_IV, left + right, 0, _BLOCK_LEN, _PARENT)


class Blake3:
    """Incremental BLAKE3 hasher (hash mode, 32-byte output)."""

    def __init__(self) -> None:
        self._chunk = _ChunkState(_IV, 0)
        self._cv_stack: list[list[int]] = []

    def _add_chunk_cv(self, cv: list[int], total_chunks: int) -> None:
        # Merge completed subtrees: one merge per trailing zero bit of the chunk count.
        while total_chunks & 1 == 0:
            cv = _parent_output(self._cv_stack.pop(), cv).chaining_value()
            total_chunks >>= 1
        self._cv_stack.append(cv)

    def update(self, data: Buffer) -> Blake3:
        data = bytes(data)
        while data:
            if len(self._chunk) == _CHUNK_LEN:
                cv = self._chunk.output().chaining_value()
                total = self._chunk.chunk_counter + 1
                self._add_chunk_cv(cv, total)
                self._chunk = _ChunkState(_IV, total)
            take = min(_CHUNK_LEN - len(self._chunk), len(data))
            self._chunk.update(data[:take])
            data = data[take:]
        return self

    def digest(self) -> bytes:
        out = self._chunk.output()
        for cv in reversed(self._cv_stack):
            out = _parent_output(cv, out.chaining_value())
        return out.root_bytes()

    def hexdigest(self) -> str:
        return self.digest().hex()


# --------------------------------------------------------------------------- public API
def _view(data: Buffer) -> bytes:
    """The bytes of a C-contiguous buffer (TypeError / BufferError like the native module)."""
    if isinstance(data, bytes):
        return data
    mv = memoryview(data)
    if not mv.c_contiguous:
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    return mv.tobytes()


def _threads(threads: int) -> int:
    threads = int(threads)
    if threads < 0:
        raise ValueError(
            f"threads must be >= 0 (0 = all cores, 1 = single thread), got {threads}"
        )
    return threads


def blake3_digest(data: Buffer, threads: int = 0) -> bytes:
    """BLAKE3 digest (32 bytes) of a bytes-like object. ``threads`` is accepted and ignored here."""
    _threads(threads)
    return Blake3().update(_view(data)).digest()


def content_id(data: Buffer, threads: int = 0) -> str:
    """Content id: lowercase hex of the BLAKE3 digest (64 characters)."""
    return blake3_digest(data, threads).hex()


def content_id_file(path: str | os.PathLike[str]) -> str:
    """Content id of a file's bytes, streamed in 1 MiB blocks."""
    hasher = Blake3()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest()


def content_ids(items: Iterable[Buffer]) -> list[str]:
    """Content ids of many items, in order."""
    return [content_id(item) for item in items]


def _leaf_hash(leaf: bytes) -> bytes:
    return Blake3().update(b"\x00" + leaf).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return Blake3().update(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 Merkle Tree Hash over already-hashed leaves (n >= 1)."""
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return _node_hash(_mth(hashes[:k]), _mth(hashes[k:]))


def merkle_root(leaves: Iterable[Buffer]) -> bytes:
    """Merkle root (32 bytes); the empty tree's root is BLAKE3(b"")."""
    hashes = [_leaf_hash(_view(leaf)) for leaf in leaves]
    if not hashes:
        return blake3_digest(b"")
    return _mth(hashes)


def merkle_root_chunks(data: Buffer, chunk_size: int) -> bytes:
    """Merkle root over consecutive ``chunk_size``-byte chunks of ``data`` (the last may be short)."""
    chunk_size = int(chunk_size)
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    raw = _view(data)
    return merkle_root(raw[i : i + chunk_size] for i in range(0, len(raw), chunk_size))


def _path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 PATH(m, D[n]) over leaf hashes."""
    n = len(hashes)
    if n <= 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, hashes[:k]), _mth(hashes[k:])]
    return [*_path(m - k, hashes[k:]), _mth(hashes[:k])]


def merkle_proof(leaves: Sequence[Buffer], index: int) -> list[bytes]:
    """RFC 9162 inclusion audit path (bottom-up) for leaf ``index``; IndexError when out of range."""
    hashes = [_leaf_hash(_view(leaf)) for leaf in leaves]
    index = int(index)
    if not 0 <= index < len(hashes):
        raise IndexError(
            f"leaf index {index} out of range for a tree of {len(hashes)} leaves"
        )
    return _path(index, hashes)


def merkle_verify(
    root: Buffer, leaf: Buffer, index: int, count: int, proof: Iterable[Buffer]
) -> bool:
    """RFC 9162 section 2.1.3.2 inclusion-proof check. Returns False (never raises) on a mismatch."""
    root_b, leaf_b = _view(root), _view(leaf)
    path = [_view(p) for p in proof]
    index, count = int(index), int(count)
    if len(root_b) != 32 or not 0 <= index < count or any(len(p) != 32 for p in path):
        return False
    fn, sn = index, count - 1
    r = _leaf_hash(leaf_b)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_b
