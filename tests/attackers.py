"""What an attacker sends, for tests/test_attacks.py: signed offers from its own identity, and bytes
no honest node would produce (a task frame with a NaN deadline, a wire header with a NaN time).

Everything is signed with real Ed25519 keys and sent over real CurveZMQ sockets on 127.0.0.1.
"""

from __future__ import annotations

import collections
import functools
import os
import time
import types
from collections.abc import Iterable
from pathlib import Path

import msgpack
import zmq
from zmq.utils import z85

from gaia_comm_zmq import wire
from gaia_comm_zmq.address import parse_address
from gaia_comm_zmq.keys import CurveKey
from gaia_core import codec
from gaia_core.envelope import signed_bytes
from gaia_core.identity import Identity
from gaia_core.jobs.messages import OFFER, OfferReply
from gaia_core.model import Limits, NodeRecord, Task
from gaia_core.node import Node


def echo_module() -> bytes:
    """The shipped ``echo`` WASM module."""
    from gaia_runner_wasm import workloads

    return workloads.module_bytes("echo")


def flood_tasks(submitter: str, count: int, *, priority: int, tag: str = "flood") -> list[Task]:
    """``count`` distinct echo tasks of ``submitter`` at ``priority``, each carrying the (209-byte) module."""
    module = echo_module()
    return [Task.create(module, entry="echo", input=f"{tag} {i}".encode(), submitter=submitter, priority=priority,
                        limits=Limits(fuel=1_000_000, timeout_s=5.0)) for i in range(count)]


def offer(sender: Node, worker: str, frames: Iterable[bytes], *, timeout: float = 30.0) -> OfferReply:
    """One signed ``task.offer`` of ``frames`` from ``sender``'s identity, through its transport's request API."""
    reply = sender.transport.request(worker, OFFER, msgpack.packb(list(frames)), timeout=timeout)
    return codec.decode(reply, OfferReply)


def offer_all(sender: Node, worker: str, tasks: list[Task], *, batch: int = 1000) -> collections.Counter[str]:
    """Offer ``tasks`` in batches; the answers counted by outcome ("accepted" or the refusal reason)."""
    outcomes: collections.Counter[str] = collections.Counter()
    for start in range(0, len(tasks), batch):
        reply = offer(sender, worker, (codec.encode(t) for t in tasks[start:start + batch]))
        outcomes.update("accepted" if a.accepted else a.reason for a in reply.answers)
    return outcomes


@functools.cache
def curve_key(identity: Identity) -> CurveKey:
    """The Curve key an attacking identity's connections use: one per identity, as a node's transport keeps one."""
    return CurveKey.generate()


def padded_record(identity: Identity, size: int) -> bytes:
    """A valid, signed-for NodeRecord of ``identity`` padded (by its name) to about ``size`` bytes encoded."""
    record = NodeRecord(node_id=identity.node_id, name="x" * size, transport={"curve": curve_key(identity).public})
    return codec.encode(record)


def rss_mib(pid: int) -> float:
    """The resident set of process ``pid`` now, in MiB (VmRSS)."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    raise AssertionError(f"process {pid} has no VmRSS")


def nan_deadline_frame(task: Task) -> bytes:
    """``task`` encoded as a frame whose deadline is NaN (the model refuses to build such a Task)."""
    data = codec.converter.unstructure(task)
    data["deadline"] = float("nan")
    return msgpack.packb({"gaia": codec.SCHEMA_VERSION, "type": "Task", "data": data}, use_bin_type=True)


class RawDealer:
    """A bare CurveZMQ DEALER connected to a node's listening socket, sending hand-made wire messages."""

    def __init__(self, address: str, identity: Identity) -> None:
        endpoint, key = parse_address(address, curve=True)
        self.identity = identity
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.curve_serverkey = z85.encode(key)
        self.sock.curve_publickey = z85.encode(curve_key(identity).public)
        self.sock.curve_secretkey = z85.encode(curve_key(identity).secret)
        self.sock.connect(endpoint)

    def send(self, kind: str, body: bytes, *, sent_at: float | None = None, mtype: int = wire.REQUEST) -> None:
        """Send a message (a request unless ``mtype`` says otherwise) stamped ``sent_at`` (now when None;
        any float, NaN included), correctly signed over that stamp."""
        sent_at = time.time() if sent_at is None else sent_at
        nonce = os.urandom(16)
        unsealed = types.SimpleNamespace(kind=kind, sender=self.identity.node_id, sent_at=sent_at, nonce=nonce,
                                         body=body)
        signature = self.identity.sign(signed_bytes(unsealed))  # type: ignore[arg-type]
        head = msgpack.packb([wire.WIRE_VERSION, mtype, 1, kind, self.identity.node_id, sent_at, nonce,
                              signature], use_bin_type=True)
        self.sock.send_multipart([head, body])

    def answered(self, timeout_s: float) -> bool:
        """Whether any answer arrived within ``timeout_s``."""
        return bool(self.sock.poll(int(timeout_s * 1000)))

    def close(self) -> None:
        """Close the socket and its context."""
        self.ctx.destroy(linger=0)
