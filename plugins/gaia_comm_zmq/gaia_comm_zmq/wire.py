"""The wire format: one kernel Envelope per message, as two ZeroMQ frames.

Frame 1 is a msgpack header ``[WIRE_VERSION, type, correlation id, kind,
sender, sent_at, nonce, signature]``; frame 2 is the envelope body, kept out of
the header so large bodies travel zero-copy. The signature is the kernel's
(:func:`gaia_core.envelope.seal`) and covers kind, sender, time, nonce and body;
it is empty on a CurveZMQ channel the receiver binds to the sender's signed record. The
kernel's gate (:mod:`gaia_core.inbound`) checks it, or the channel, not this module. Every way
the transport itself refuses a message has a reason name, counted by the transport.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import msgpack
import zmq

from gaia_core.plugin_api import Envelope

WIRE_VERSION = 1
REQUEST, REPLY, ERROR, ANNOUNCE = 1, 2, 3, 4
TYPES = frozenset({REQUEST, REPLY, ERROR, ANNOUNCE})

#: Envelope kinds the transport uses itself; a user request may not use this prefix.
INTERNAL = "gaia.net."
HELLO = INTERNAL + "hello"
PING = INTERNAL + "ping"
REPLY_KIND = INTERNAL + "reply"
ERROR_KIND = INTERNAL + "error"

#: Every reason the transport itself refuses a received message for (authentication is the kernel's).
REASONS = ("malformed", "oversized", "undecodable", "version", "unknown_type", "wrong_sender", "not_allowed",
           "bad_record", "unexpected", "zap_denied")


class Refused(Exception):
    """A received message was refused; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def header(mtype: int, corr: int, env: Envelope) -> bytes:
    """The header frame of ``env`` sent as a message of type ``mtype``."""
    return msgpack.packb([WIRE_VERSION, mtype, corr, env.kind, env.sender, env.sent_at, env.nonce, env.signature],
                         use_bin_type=True)


def unsigned_header(mtype: int, corr: int, kind: str, sender: str) -> bytes:
    """The header frame of a new unsigned envelope from ``sender`` (now, a fresh nonce), for a channel the
    receiver binds: the same bytes as :func:`header` of ``seal(..., sign=False)``, without building the envelope."""
    return msgpack.packb([WIRE_VERSION, mtype, corr, kind, sender, time.time(), os.urandom(16), b""],
                         use_bin_type=True)


def parse(frames: list[bytes], max_bytes: int) -> tuple[int, int, Envelope]:
    """The type, correlation id and (unverified) envelope of a received message, or :class:`Refused`."""
    if len(frames) != 2:
        raise Refused("malformed", f"{len(frames)} frames, expected 2")
    head, body = frames
    if len(head) + len(body) > max_bytes:
        raise Refused("oversized", f"{len(head) + len(body)} bytes > {max_bytes}")
    try:
        fields = msgpack.unpackb(head, raw=False, max_bin_len=128, max_str_len=256, max_array_len=8, max_map_len=0)
    except Exception:  # msgpack raises several unrelated types for bad bytes
        raise Refused("undecodable", "header is not msgpack") from None
    if not isinstance(fields, list) or len(fields) != 8:
        raise Refused("undecodable", "header is not an 8-item list")
    version, mtype, corr, kind, sender, sent_at, nonce, signature = fields
    if version != WIRE_VERSION:
        raise Refused("version", f"wire version {version!r}, this node speaks {WIRE_VERSION}")
    if mtype not in TYPES or isinstance(mtype, bool):
        raise Refused("unknown_type", f"message type {mtype!r}")
    if not isinstance(corr, int) or isinstance(corr, bool) or corr < 0:
        raise Refused("undecodable", "bad correlation id")
    if not isinstance(sent_at, (int, float)) or isinstance(sent_at, bool) or not math.isfinite(sent_at):
        raise Refused("undecodable", "bad timestamp")
    try:
        env = Envelope(kind=kind, sender=sender, sent_at=sent_at, nonce=nonce, body=body, signature=signature)
    except (TypeError, ValueError) as exc:
        raise Refused("undecodable", str(exc)[:200]) from None
    return mtype, corr, env


_MORE, _NOBLOCK = int(zmq.SNDMORE), int(zmq.NOBLOCK)  # plain ints: pyzmq's flag enums cost µs per message


def send(sock: zmq.Socket, frames: Sequence[Any], *, block: bool = False) -> None:
    """Send ``frames`` as one message, zero-copy; zmq.Again (nothing sent) when ``block`` is off and it is full.

    ZeroMQ delivers a multipart message whole: once its first frame is taken, the others are too.
    Frame by frame with integer flags, this costs half of ``send_multipart``.
    """
    flags = 0 if block else _NOBLOCK
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        sock.send(frame, flags | _MORE if i < last else flags, copy=False)


def recv(sock: zmq.Socket) -> list[zmq.Frame]:
    """The frames of the next message, without waiting (zmq.Again when there is none), read zero-copy."""
    frame = sock.recv(_NOBLOCK, copy=False)
    frames = [frame]
    while frame.more:
        frame = sock.recv(_NOBLOCK, copy=False)
        frames.append(frame)
    return frames

