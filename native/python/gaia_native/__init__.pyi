"""Type stubs for gaia_native (the Rust extension ``gaia_native._gaia_native``)."""

import os
from collections.abc import Iterable, Sequence
from typing import Final, final

from typing_extensions import Buffer

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

__version__: Final[str]
build_profile: Final[str]

def blake3_digest(data: Buffer, threads: int = 0) -> bytes:
    """BLAKE3 digest (32 bytes). GIL released for inputs >= 64 KiB; multi-threaded for >= 1 MiB
    unless ``threads == 1`` (0 = all cores, n = n threads)."""

def content_id(data: Buffer, threads: int = 0) -> str:
    """Lowercase hex BLAKE3 digest (64 characters)."""

def content_id_file(path: str | os.PathLike[str]) -> str:
    """Content id of a file (memory-mapped, multi-threaded, GIL released). Raises OSError."""

def content_ids(items: Iterable[Buffer]) -> list[str]:
    """Content ids of many items in one call, in order."""

def merkle_root(leaves: Iterable[Buffer]) -> bytes:
    """RFC 9162-shaped Merkle root with BLAKE3: leaf = H(0x00 || leaf), node = H(0x01 || l || r),
    empty tree = H(b"")."""

def merkle_root_chunks(data: Buffer, chunk_size: int) -> bytes:
    """Merkle root over consecutive ``chunk_size``-byte chunks (last may be short). ValueError if
    ``chunk_size <= 0``."""

def merkle_proof(leaves: Sequence[Buffer], index: int) -> list[bytes]:
    """RFC 9162 inclusion audit path for leaf ``index`` (bottom-up). IndexError when out of range."""

def merkle_verify(root: Buffer, leaf: Buffer, index: int, count: int, proof: Iterable[Buffer]) -> bool:
    """Check an inclusion proof; False (never an exception) for wrong but well-typed input."""

@final
class Scheduler:
    """Priority / EDF / fair-share / FIFO scheduler keyed by task id.

    Pop order: (1) highest priority first (strict classes); (2) inside the top class, the submitter
    with the smallest virtual time (served / weight) goes next, each pop adding cost / weight; a
    submitter becoming active starts at max(own, smallest active virtual time); ties by earliest
    head deadline, then arrival; (3) inside one submitter: earliest deadline (None = +inf), then FIFO.
    """

    def __init__(self) -> None: ...
    def push(
        self,
        key: str,
        priority: int = 0,
        deadline: float | None = None,
        submitter: str = "",
        cost: float = 1.0,
    ) -> None: ...
    def push_many(self, items: Iterable[tuple[str, int, float | None, str]]) -> None: ...
    def pop(self) -> str | None: ...
    def pop_many(self, n: int) -> list[str]: ...
    def remove(self, key: str) -> bool: ...
    def pop_expired(self, now: float) -> list[str]: ...
    def set_share(self, submitter: str, weight: float) -> None: ...
    def served(self, submitter: str) -> float: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
