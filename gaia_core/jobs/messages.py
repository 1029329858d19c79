"""The typed records a submitter and its workers exchange (encoded by :mod:gaia_core.codec).

* ``task.offer``: a list of task frames; the worker answers an :class:`OfferReply`.
* ``task.results``: a list of (result, proof) frames; the submitter answers :class:`ResultAcks`.
* ``task.settled``: a :class:`Settlement`, from submitter to worker, for credit decided after the
  result's delivery was acknowledged (a redundancy quorum completed by another replica, a
  spot-check that ran later). The worker answers an empty body.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs
from attrs import field, frozen, validators as v

from gaia_core.model import VerdictStatus
from gaia_core.rewards import Credit

OFFER = "task.offer"
RESULTS = "task.results"
SETTLED = "task.settled"


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
