"""The typed records a submitter and its workers exchange (encoded by :mod:gaia_core.codec).

* ``task.offer``: a list of task frames; the worker answers an :class:`OfferReply`.
* ``task.results``: ``[seal, [[result, proof or None], ...]]``: the (result, proof) frames and one
  :class:`~gaia_core.evidence.BatchSeal` over all of them, signed by the worker (:func:`seal_results`,
  :func:`open_results`), so each result is the worker's signed evidence whatever the channel was;
  the submitter answers :class:`ResultAcks`.
* ``task.settled``: a :class:`Settlement`, from submitter to worker, for credit decided after the
  result's delivery was acknowledged (a redundancy quorum completed by another replica, a
  spot-check that ran later). The worker answers an empty body.
* ``task.credits``: a :class:`CreditQuery`, from worker to submitter, naming deliveries whose credit
  the worker was never told (its submitter gave up sending it while the worker was away); the
  submitter answers a :class:`Settlement` of what its ledger granted that worker for them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import msgpack
from attrs import field, frozen, validators as v

from gaia_core import codec, evidence
from gaia_core.envelope import Refused
from gaia_core.errors import CodecError, ValidationError
from gaia_core.identity import Identity
from gaia_core.model import Envelope, VerdictStatus
from gaia_core.rewards import Credit

OFFER = "task.offer"
RESULTS = "task.results"
SETTLED = "task.settled"
CREDITS = "task.credits"
#: Task ids one ``task.credits`` query may name.
MAX_QUERY = 256


def _optional_delay(_inst: object, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 3600.0):
        raise ValueError(f"{attribute.name} must be between 0 and 3600 seconds, got {value!r}")


@frozen
class OfferAnswer:
    """A worker's answer to one offered task: accepted, or refused with a machine-readable reason."""

    task_id: str = field(validator=(v.instance_of(str), v.max_len(64)))
    accepted: bool = field(validator=v.instance_of(bool))
    reason: str = field(default="", validator=(v.instance_of(str), v.max_len(64)))
    message: str = field(default="", validator=(v.instance_of(str), v.max_len(4096)))
    retry_after: float | None = field(default=None, converter=attrs.converters.optional(float),
                                      validator=_optional_delay)


def _answers(items: Iterable[OfferAnswer]) -> tuple[OfferAnswer, ...]:
    return tuple(items)


@frozen
class OfferReply:
    """The answers to one offer, in the order of its tasks."""

    answers: tuple[OfferAnswer, ...] = field(converter=_answers)


@frozen
class ResultAck:
    """The submitter's answer about one delivered result.

    ``credit`` is what the worker was granted; ``pending`` says it is not decided yet and a
    :class:`Settlement` will follow.
    """

    task_id: str = field(validator=(v.instance_of(str), v.max_len(64)))
    verdict: VerdictStatus = field(converter=VerdictStatus)
    reason: str = field(default="", validator=(v.instance_of(str), v.max_len(4096)))
    credit: Credit | None = None
    pending: bool = field(default=False, validator=v.instance_of(bool))


def _acks(items: Iterable[ResultAck]) -> tuple[ResultAck, ...]:
    return tuple(items)


@frozen
class ResultAcks:
    """The answers to one delivery of results, in its order."""

    acks: tuple[ResultAck, ...] = field(converter=_acks)


def _credits(items: Iterable[Credit]) -> tuple[Credit, ...]:
    return tuple(items)


@frozen
class Settlement:
    """Credit a submitter decided after it acknowledged the results (every row durable before it is sent)."""

    credits: tuple[Credit, ...] = field(converter=_credits)


def _task_ids(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


@frozen
class CreditQuery:
    """The deliveries a worker asks its submitter the credit of (at most :data:`MAX_QUERY`)."""

    task_ids: tuple[str, ...] = field(converter=_task_ids, validator=v.deep_iterable(
        v.and_(v.instance_of(str), v.max_len(64)), v.max_len(MAX_QUERY)))


#: A result frame and its proof frame (None without a proof), as a ``task.results`` message carries them.
ResultFrames = tuple[bytes, "bytes | None"]


def result_leaf(result: bytes, proof: bytes | None) -> bytes:
    """The item a batch seal covers for a result frame and its proof frame (None without a proof)."""
    return codec.canonical_bytes([result, proof or b""])


def seal_results(identity: Identity, pairs: Sequence[ResultFrames]) -> bytes:
    """The body of a ``task.results`` message: ``pairs`` and one signature over the Merkle root of them all."""
    seal = evidence.seal_batch(identity, RESULTS, [result_leaf(*p) for p in pairs])
    return msgpack.packb([codec.encode(seal), [list(p) for p in pairs]])


def open_results(envelope: Envelope) -> list[ResultFrames]:
    """The (result, proof) frames of a ``task.results`` message, after its batch seal checked out
    (:func:`open_sealed_results` without the evidence)."""
    return [frames for frames, _ in open_sealed_results(envelope)]


def open_sealed_results(envelope: Envelope) -> list[tuple[ResultFrames, evidence.ItemSeal]]:
    """The (result, proof) frames of a ``task.results`` message, each with its evidence (its batch seal and
    path: :func:`gaia_core.evidence.check_item` of :func:`result_leaf`), after the batch seal checked out.

    The seal must be the sender's, fresh, and cover exactly these frames; ValidationError otherwise.
    A retried delivery of the same batch is taken again (results are idempotent), so no nonce is used up.
    """
    try:
        seal_frame, raw = msgpack.unpackb(envelope.body)
        seal = codec.decode(seal_frame, evidence.BatchSeal, max_bytes=1024)
        pairs: list[Any] = raw if isinstance(raw, list) else []
        if not isinstance(raw, list) or not all(_is_pair(p) for p in pairs):
            raise ValueError("not a list of [result, proof] pairs")
    except (ValueError, TypeError, CodecError, msgpack.UnpackException) as exc:
        raise ValidationError(f"malformed {envelope.kind} body from {envelope.sender[:12]}: not a batch seal and "
                              f"[result, proof] pairs ({str(exc)[:200]})",
                              hint="the peer runs an incompatible version") from None
    frames = [(p[0], p[1]) for p in pairs]
    try:
        if seal.sender != envelope.sender or seal.kind != RESULTS:
            raise Refused("forged", f"the batch seal is {seal.sender[:12]}'s {seal.kind}, not the sender's results")
        kept = evidence.open_items(seal, [result_leaf(*p) for p in frames])
    except Refused as refused:
        raise ValidationError(f"{envelope.kind} from {envelope.sender[:12]} refused: {refused}",
                              hint="the results must be sealed by the node that ran them") from None
    return list(zip(frames, kept, strict=True))


def _is_pair(item: object) -> bool:
    return (isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes)
            and (item[1] is None or isinstance(item[1], bytes)))
