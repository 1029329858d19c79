"""Evidence signed once per batch (issue #14): one Ed25519 signature over a Merkle root, each item
verifiable on its own with its path; forged, altered, stale and replayed batches are refused; a
worker's delivered results are sealed this way, and the submitter checks the seal before it reads them."""

from __future__ import annotations

import attrs
import msgpack
import pytest

from gaia_core import codec, evidence
from gaia_core.envelope import Refused, ReplayGuard, seal
from gaia_core.errors import ValidationError
from gaia_core.evidence import BatchSeal, open_batch, paths, seal_batch, verify_item
from gaia_core.identity import Identity
from gaia_core.jobs.messages import RESULTS, open_results, seal_results

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def worker() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def items() -> list[bytes]:
    return [f"result {i}".encode() * (i + 1) for i in range(37)]  # not a power of two: odd nodes carried up


@pytest.fixture(scope="module")
def sealed(worker: Identity, items: list[bytes]) -> BatchSeal:
    return seal_batch(worker, RESULTS, items, now=NOW)


def test_one_signature_covers_the_batch_and_each_item_checks_alone(sealed, items, worker) -> None:
    open_batch(sealed, items, now=NOW + 1)
    assert sealed.sender == worker.node_id and sealed.count == len(items) and len(sealed.signature) == 64
    for index, (item, path) in enumerate(zip(items, paths(items), strict=True)):
        assert verify_item(sealed, index, item, path)
    assert evidence.signed_bytes(sealed) == evidence.signed_bytes(codec.decode(codec.encode(sealed), BatchSeal))


def test_an_item_is_not_verified_at_another_index_with_another_path_or_altered(sealed, items) -> None:
    all_paths = paths(items)
    assert not verify_item(sealed, 3, items[4], all_paths[4])
    assert not verify_item(sealed, 4, items[4], all_paths[3])
    assert not verify_item(sealed, 4, items[4] + b"!", all_paths[4])
    assert not verify_item(sealed, 99, items[4], all_paths[4])
    other = seal_batch(Identity.generate(), RESULTS, items, now=NOW)  # same root, another signer's seal
    assert not verify_item(attrs.evolve(other, signature=sealed.signature), 4, items[4], all_paths[4])


@pytest.mark.parametrize("change", ["item", "order", "dropped", "count", "root", "signer", "time"])
def test_an_altered_batch_or_seal_is_refused_as_forged(sealed, items, change) -> None:
    batch, header = list(items), sealed
    if change == "item":
        batch[5] = b"another output"
    elif change == "order":
        batch[0], batch[1] = batch[1], batch[0]
    elif change == "dropped":
        batch.pop()
    elif change == "count":
        header = attrs.evolve(sealed, count=sealed.count + 1)
        batch.append(b"extra")
    elif change == "root":
        header = attrs.evolve(sealed, root=bytes(32))
    elif change == "signer":
        header = attrs.evolve(sealed, sender=Identity.generate().node_id)
    else:
        header = attrs.evolve(sealed, sent_at=NOW + 5)
    with pytest.raises(Refused) as refused:
        open_batch(header, batch, now=NOW)
    assert refused.value.reason == "forged"


def test_a_stale_batch_is_refused_and_a_replayed_one_when_a_guard_remembers(sealed, items) -> None:
    with pytest.raises(Refused, match="stale"):
        open_batch(sealed, items, now=NOW + 3600)
    open_batch(sealed, items, fresh=False, now=NOW + 3600)  # evidence checked long after: no window
    guard = ReplayGuard()
    open_batch(sealed, items, guard, now=NOW)
    with pytest.raises(Refused) as replayed:
        open_batch(sealed, items, guard, now=NOW + 1)
    assert replayed.value.reason == "replayed"


def test_a_seal_from_the_wire_is_validated() -> None:
    frame = codec.encode(seal_batch(Identity.generate(), RESULTS, [b"x"], now=NOW))
    data = msgpack.unpackb(frame)
    for key, bad in (("count", 0), ("root", b"short"), ("sent_at", float("nan")), ("nonce", b"")):
        broken = msgpack.packb({**data, "data": {**data["data"], key: bad}})
        with pytest.raises(codec.CodecError):
            codec.decode(broken, BatchSeal)


def test_delivered_results_are_read_only_under_their_senders_seal(worker) -> None:
    pairs = [(b"result-a", b"proof-a"), (b"result-b", None)]
    body = seal_results(worker, pairs)
    assert open_results(seal(worker, RESULTS, body, sign=False)) == pairs
    assert open_results(seal(worker, RESULTS, body, sign=False)) == pairs, "a retried delivery is taken again"

    relayed = seal(Identity.generate(), RESULTS, body)  # another node passing the worker's batch on as its own
    with pytest.raises(ValidationError, match="not the sender's"):
        open_results(relayed)
    seal_frame, _ = msgpack.unpackb(body)
    swapped = msgpack.packb([seal_frame, [[b"result-a", b"proof-a"], [b"result-c", None]]])
    with pytest.raises(ValidationError, match="do not hash to the sealed root"):
        open_results(seal(worker, RESULTS, swapped, sign=False))
    for malformed in (b"\xc1", msgpack.packb([[b"result-a", None]]), msgpack.packb([seal_frame, [b"x"]]),
                      msgpack.packb(7)):
        with pytest.raises(ValidationError, match=f"malformed {RESULTS} body"):
            open_results(seal(worker, RESULTS, malformed, sign=False))
