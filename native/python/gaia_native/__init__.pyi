"""Type stubs for gaia_native (the Rust extension ``gaia_native._gaia_native``)."""

from collections.abc import Iterable, Sequence
from typing import Final, final

from typing_extensions import Buffer

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

__version__: Final[str]
build_profile: Final[str]

def blake3_digest(data: Buffer) -> bytes:
    """BLAKE3 digest (32 bytes) of any C-contiguous buffer. Multi-threaded for inputs >= 1 MiB; the
    GIL is released only for ``bytes`` >= 64 KiB (other buffers are hashed with the GIL held)."""

def content_id(data: Buffer) -> str:
    """Lowercase hex BLAKE3 digest (64 characters)."""

def merkle_root(leaves: Iterable[Buffer]) -> bytes:
    """RFC 9162-shaped Merkle root with BLAKE3: leaf = H(0x00 || leaf), node = H(0x01 || l || r),
    empty tree = H(b"")."""

def set_hash_threads(cores: int) -> int:
    """Size the one hashing pool for ``cores`` threads (capped by the CPUs this process may use and
    by ``GAIA_HASH_THREADS``) and return its size; 1 = hash on the calling thread. ValueError if
    ``cores < 1``."""

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

def tensor_call(op: str, memory: Buffer, args: Sequence[int], *, alpha: float = 0.0, budget: int = ...,
                path: str | None = None) -> int:
    """Run the ``gaia_tensor`` function ``op`` (import name) with its integer ``args`` on a guest's linear
    memory (a writable buffer; axpy's ``alpha`` apart) when its cost in fuel is at most ``budget``; return
    the cost either way. ValueError names a bad argument, before anything is written. ``path`` picks a
    kernel implementation (see ``tensor_paths``; all give the same bits). Nothing else may read or write
    ``memory`` during the call: from 65536 fuel of work on, it runs with the GIL released."""

def tensor_paths() -> list[str]:
    """The tensor kernel implementations this CPU can run, slowest first (``scalar`` always)."""

def tensor_signatures() -> list[tuple[str, str]]:
    """The ``gaia_tensor`` functions: (import name, WASM parameter types, ``i`` i32 / ``f`` f32 each)."""
