"""The wire format: cattrs + msgpack, versioned, validating on every decode.

A frame is the msgpack map ``{"gaia": SCHEMA_VERSION, "type": <record name>,
"data": <record>}``. :func:`decode` refuses anything else with a
:class:`~gaia_core.errors.CodecError` that says what was wrong.
"""

from __future__ import annotations

from typing import Any, TypeVar

import cattrs
import msgpack
from cattrs.preconf.msgpack import make_converter
from cattrs.v import format_exception

from gaia_core.errors import CodecError

#: The wire schema this kernel speaks. Bump on any incompatible record change.
SCHEMA_VERSION = 1
#: Largest frame :func:`decode` accepts unless told otherwise.
MAX_FRAME_BYTES = 256 << 20

T = TypeVar("T")

converter = make_converter(forbid_extra_keys=True)


def _strict(accepted: tuple[type, ...]) -> Any:
    """A structure hook that takes only values already of an ``accepted`` type (a bool only where
    ``bool`` is accepted), so ``-29`` is no ``True``, ``1.5`` no ``1`` and ``5`` no ``"5"``."""
    def structure_value(value: Any, target: type) -> Any:
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            raise TypeError(f"expected {target.__name__}, got {type(value).__name__} {str(value)[:40]!r}")
        return target(value)  # the target may be a subclass, e.g. an enum of strings
    return structure_value


for _cls, _accepted in ((bool, (bool,)), (int, (int,)), (float, (float, int)), (str, (str,)), (bytes, (bytes,))):
    converter.register_structure_hook(_cls, _strict(_accepted))


def encode(record: object) -> bytes:
    """Encode an attrs record as one versioned msgpack frame."""
    frame = {"gaia": SCHEMA_VERSION, "type": type(record).__name__, "data": converter.unstructure(record)}
    return msgpack.packb(frame, use_bin_type=True)


def decode(data: bytes | memoryview, cls: type[T], *, max_bytes: int = MAX_FRAME_BYTES) -> T:
    """Decode and validate one frame holding a ``cls`` record.

    Raises :class:`CodecError` for oversized, truncated or garbage bytes, a
    wrong schema version, a different record type, or invalid field values.
    """
    if len(data) > max_bytes:
        raise CodecError(f"{cls.__name__} frame of {len(data)} bytes is over the {max_bytes}-byte limit")
    try:
        frame = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=max_bytes)
    except Exception as exc:  # msgpack raises several unrelated types for bad bytes
        raise CodecError(
            f"{cls.__name__} frame is not valid msgpack ({type(exc).__name__}: {exc})",
            hint="the sender is broken or the bytes were truncated",
        ) from None
    if not isinstance(frame, dict) or set(frame) != {"gaia", "type", "data"}:
        raise CodecError(f"{cls.__name__} frame has the wrong shape: expected a map of gaia, type, data")
    if type(frame["gaia"]) is not int or frame["gaia"] != SCHEMA_VERSION:
        raise CodecError(
            f"{cls.__name__} frame uses schema version {frame['gaia']!r}; this node speaks {SCHEMA_VERSION}",
            hint="run the same GAIA version on both nodes",
        )
    if frame["type"] != cls.__name__:
        raise CodecError(f"expected a {cls.__name__} frame, got {str(frame['type'])[:64]!r}")
    return structure(frame["data"], cls)


def structure(data: Any, cls: type[T]) -> T:
    """Build and validate a ``cls`` record from plain data (e.g. parsed JSON)."""
    try:
        return converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        raise CodecError(f"invalid {cls.__name__}: {describe_errors(exc, cls.__name__)}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"invalid {cls.__name__}: {exc}") from None


def describe_errors(exc: cattrs.BaseValidationError, path: str) -> str:
    """One line naming each invalid field and why (the validator's own message, shortened)."""
    return "; ".join(cattrs.transform_error(exc, path=path, format_exception=_format_exception))


def _format_exception(exc: BaseException, type_: type | None) -> str:
    text = format_exception(exc, type_)
    if isinstance(exc, ValueError):  # attrs validators and enum lookups say which value and why
        text = f"{text} ({exc})"
    return text if len(text) <= 200 else text[:199] + "…"


def unstructure(record: object) -> Any:
    """The plain-data form of a record (bytes stay bytes)."""
    return converter.unstructure(record)


def canonical_bytes(value: object) -> bytes:
    """The canonical msgpack encoding of plain data (lists, not maps, keep the order fixed)."""
    return msgpack.packb(value, use_bin_type=True)


def canonical_id(value: object) -> str:
    """The content id of :func:`canonical_bytes` of ``value``."""
    from gaia_core.hashing import content_id

    return content_id(canonical_bytes(value))
