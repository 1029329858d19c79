"""Evidence signed once per batch: one Ed25519 signature over the Merkle root of many items.

What outlives the channel it came on (a worker's results, ledger evidence) is signed, but not one
signature per item: :func:`seal_batch` signs a :class:`BatchSeal` (kind, signer, time, nonce, item
count and the Merkle root of the items, :func:`gaia_core.hashing.merkle_root`), and each item stays
verifiable on its own with :func:`verify_item`: the seal, the item's index and its inclusion path
(:func:`paths`, the sibling hashes of :class:`gaia_core.blobs.merkle.Tree`). A whole batch is checked
with :func:`open_batch`: one root, one signature, then the seal's time and nonce through a
:class:`~gaia_core.envelope.ReplayGuard`, so a stale or replayed batch is refused as an envelope is.
What a receiver keeps of one item after the batch is gone is an :class:`ItemSeal` (:func:`open_items`),
checked later, long after the channel closed, by :func:`check_item`.
"""

from __future__ import annotations

import hmac
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence

from attrs import Attribute, field, frozen, validators as v

from gaia_core.blobs.merkle import HASH_SIZE, Tree, leaf_hash, verify as verify_path
from gaia_core.codec import canonical_bytes
from gaia_core.envelope import DEFAULT_WINDOW_S, Refused, ReplayGuard, check_time
from gaia_core.hashing import merkle_root
from gaia_core.identity import Identity, verify_signature
from gaia_core.model import MAX_TIME

_DOMAIN = b"gaia-batch-v1\x00"
#: Most items one seal covers (a path is then at most 16 hashes).
MAX_ITEMS = 1 << 16


def _finite_time(_inst: object, attribute: Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and 0 <= value <= MAX_TIME):
        raise ValueError(f"{attribute.name} must be a POSIX time (seconds since 1970), got {value!r}")


@frozen
class BatchSeal:
    """The signed header of a batch: who sealed how many items of what kind, when, under which root."""

    kind: str = field(validator=(v.instance_of(str), v.min_len(1), v.max_len(64)))
    sender: str = field(validator=(v.instance_of(str), v.matches_re(r"[0-9a-f]{64}")))
    sent_at: float = field(converter=float, validator=_finite_time)
    nonce: bytes = field(validator=(v.instance_of(bytes), v.min_len(16), v.max_len(16)))
    count: int = field(validator=(v.instance_of(int), v.ge(1), v.le(MAX_ITEMS)))
    root: bytes = field(validator=(v.instance_of(bytes), v.min_len(HASH_SIZE), v.max_len(HASH_SIZE)))
    signature: bytes = field(default=b"", validator=(v.instance_of(bytes), v.max_len(64)))


def signed_bytes(seal: BatchSeal) -> bytes:
    """The exact bytes a seal's signature covers."""
    return _DOMAIN + canonical_bytes([seal.kind, seal.sender, seal.sent_at, seal.nonce, seal.count, seal.root])


def seal_batch(identity: Identity, kind: str, items: Sequence[bytes], *, now: float | None = None) -> BatchSeal:
    """Sign ``items`` (1 to :data:`MAX_ITEMS` of them) as one batch of ``kind``: one signature for all."""
    if not 1 <= len(items) <= MAX_ITEMS:
        raise ValueError(f"a batch holds 1 to {MAX_ITEMS} items, got {len(items)}")
    seal = BatchSeal(kind, identity.node_id, time.time() if now is None else now, os.urandom(16), len(items),
                     merkle_root(items))
    return BatchSeal(seal.kind, seal.sender, seal.sent_at, seal.nonce, seal.count, seal.root,
                     identity.sign(signed_bytes(seal)))


def paths(items: Sequence[bytes]) -> list[list[bytes]]:
    """The inclusion path of each of ``items`` in its batch's tree, in order (for :func:`verify_item`)."""
    tree = Tree([leaf_hash(item) for item in items])
    return [tree.proof(i) for i in range(len(items))]


def open_batch(seal: BatchSeal, items: Sequence[bytes], guard: ReplayGuard | None = None, *, fresh: bool = True,
               now: float | None = None) -> None:
    """Accept ``items`` as the batch ``seal`` covers, or raise :class:`~gaia_core.envelope.Refused`.

    One Merkle root and one signature check for the whole batch. ``fresh``: the seal's time must be
    within the freshness window of ``now``; with ``guard`` (fresh either way), its (sender, nonce) must also
    be new there: leave it out where the same batch may come again, e.g. a retried delivery that is idempotent.
    """
    _accept(seal, len(items), lambda: merkle_root(items), guard, fresh, now)


def open_items(seal: BatchSeal, items: Sequence[bytes], guard: ReplayGuard | None = None, *, fresh: bool = True,
               now: float | None = None) -> list[ItemSeal]:
    """:func:`open_batch`, then the :class:`ItemSeal` of each item to keep (its leaf hash and path to the root)."""
    leaves = [leaf_hash(item) for item in items]
    tree = Tree(leaves)
    _accept(seal, len(items), lambda: tree.root, guard, fresh, now)
    return [ItemSeal(seal, i, leaf, tuple(tree.proof(i))) for i, leaf in enumerate(leaves)]


def _accept(seal: BatchSeal, count: int, root: Callable[[], bytes], guard: ReplayGuard | None, fresh: bool,
            now: float | None) -> None:
    if count != seal.count:
        raise Refused("forged", f"{seal.kind} batch from {seal.sender[:12]} holds {count} items, "
                      f"its seal says {seal.count}")
    if not hmac.compare_digest(root(), seal.root):
        raise Refused("forged", f"{seal.kind} batch from {seal.sender[:12]}: items do not hash to the sealed root")
    if not verify_signature(seal.sender, seal.signature, signed_bytes(seal)):
        raise Refused("forged", f"{seal.kind} batch seal is not signed by {seal.sender[:12]}")
    now = time.time() if now is None else now
    if fresh:
        check_time(seal, now, guard.window_s if guard is not None else DEFAULT_WINDOW_S)
    if guard is not None:
        guard.check(seal, now, scope="batch")


def verify_item(seal: BatchSeal, index: int, item: bytes, path: Sequence[bytes]) -> bool:
    """True when ``item`` is item ``index`` of the batch ``seal`` covers and the seal is its sender's."""
    return (verify_path(seal.root, seal.count, index, leaf_hash(item), path)
            and verify_signature(seal.sender, seal.signature, signed_bytes(seal)))


def _hash(_inst: object, attribute: Attribute[bytes], value: bytes) -> None:
    if not (isinstance(value, bytes) and len(value) == HASH_SIZE):
        raise ValueError(f"{attribute.name} must be a {HASH_SIZE}-byte hash")


def _hashes(value: Iterable[bytes]) -> tuple[bytes, ...]:
    return tuple(value)


def _path(_inst: object, attribute: Attribute[tuple[bytes, ...]], value: tuple[bytes, ...]) -> None:
    # one check for all (attrs' nested validators cost more than the rest of keeping an item's evidence)
    if len(value) > MAX_ITEMS.bit_length() or not all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in value):
        raise ValueError(f"{attribute.name} must be at most {MAX_ITEMS.bit_length()} {HASH_SIZE}-byte hashes")


@frozen
class ItemSeal:
    """One item's evidence, kept after its batch is gone: the batch's seal, the item's index, the hash
    of its leaf (:func:`gaia_core.blobs.merkle.leaf_hash`) and its inclusion path to the sealed root."""

    seal: BatchSeal
    index: int = field(validator=(v.instance_of(int), v.ge(0), v.lt(MAX_ITEMS)))
    leaf: bytes = field(validator=_hash)
    path: tuple[bytes, ...] = field(converter=_hashes, validator=_path)


def check_item(evidence: ItemSeal, item: bytes) -> str | None:
    """None when ``item`` is the one ``evidence`` seals, else what failed: ``altered output`` (the item does not
    hash to the sealed leaf), ``wrong path`` (the path does not lead from it to the sealed root) or
    ``bad signature`` (the root is not signed by the seal's sender), each with a line saying so."""
    seal = evidence.seal
    if not hmac.compare_digest(leaf_hash(item), evidence.leaf):
        return "altered output: it does not hash to the item the batch seal covers"
    if not verify_path(seal.root, seal.count, evidence.index, evidence.leaf, evidence.path):
        return f"wrong path: item {evidence.index} of {seal.count} does not lead to the sealed root by this path"
    if not verify_signature(seal.sender, seal.signature, signed_bytes(seal)):
        return f"bad signature: the sealed root is not signed by {seal.sender[:16]}"
    return None
