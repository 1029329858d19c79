"""The five provider roles: the records plugins register and the protocols providers satisfy.

A plugin's hook yields a *spec* record (conda's pattern); the kernel builds
the provider by calling ``spec.factory(context)`` when a node (or a command)
needs it. Providers are plain classes that satisfy the protocols below; a
plugin never imports another plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from attrs import field, frozen, validators as v

from gaia_core.config import Config, Home
from gaia_core.model import (
    BenchmarkReport,
    Envelope,
    NodeRecord,
    Proof,
    ResourceSample,
    Status,
    Task,
    TaskResult,
    Verdict,
    str_tuple,
)

if TYPE_CHECKING:
    import pluggy

    from gaia_core.identity import Identity

ROLES = ("runner", "benchmark", "prover", "transport", "queue")
#: Roles where exactly one provider may be active.
SINGLE_ROLES = ("transport", "queue")


@frozen
class NodeContext:
    """What a provider may use: the node's configuration, home, identity and hooks."""

    config: Config
    home: Home
    identity: Identity | None = None
    hook: pluggy.HookRelay | None = None
    log: logging.Logger = field(factory=lambda: logging.getLogger("gaia"))
    task_kinds: frozenset[str] = frozenset()


@frozen
class Channel:
    """A peer key that a transport's channel authenticated (e.g. the CurveZMQ client key of a connection).

    The transport only vouches for it; the kernel binds it to the sender's signed NodeRecord
    (:mod:`gaia_core.inbound`). ``scheme`` names the key's kind, as in :meth:`NodeRecord.channel_keys`.
    """

    scheme: str = field(validator=(v.instance_of(str), v.min_len(1), v.max_len(32)))
    key: bytes = field(validator=(v.instance_of(bytes), v.min_len(1), v.max_len(1024)))


@frozen
class PeerInfo:
    """What a transport knows of one peer."""

    node_id: str
    address: str
    state: str = field(default="up", validator=v.in_({"up", "down", "connecting"}))
    last_seen: float = 0.0
    rtt_s: float | None = None
    record: NodeRecord | None = None


@frozen
class QueueStats:
    """A queue's counters, as shown by ``gaia status``."""

    depth: int = 0
    depth_bytes: int = 0
    capacity: int = 0
    admitted: int = 0
    rejected: dict[str, int] = field(factory=dict)
    finished: dict[str, int] = field(factory=dict)
    wait_p50_s: float | None = None
    wait_p99_s: float | None = None
    share: dict[str, float] = field(factory=dict)


@runtime_checkable
class Runner(Protocol):
    """Runs one validated task under its limits. Must be thread-safe: workers call ``run`` concurrently.

    A runner that cannot meter fuel sets the class attribute ``supports_fuel = False`` (absent
    means it does); its tasks then end by their timeout, and the conformance suite skips its fuel
    checks, saying why.
    """

    def run(self, task: Task) -> TaskResult:
        """Run ``task``; every failure is a TaskResult with a non-ok status, never an exception."""

    def close(self) -> None:
        """Release caches and threads."""


@runtime_checkable
class Benchmark(Protocol):
    """Measures what this machine can do, and what it is doing now."""

    def measure(self, *, quick: bool = False) -> BenchmarkReport:
        """Measure capabilities; ``quick`` trades precision for a run of a few seconds."""

    def sample(self) -> ResourceSample:
        """One live reading of resource use; cheap enough to call every second."""


@runtime_checkable
class Prover(Protocol):
    """Proves what a node ran, and verifies such proofs."""

    scheme: str

    def prove(self, task: Task, result: TaskResult) -> Proof:
        """A proof that this node ran ``task`` to ``result``."""

    def verify(self, proof: Proof, task: Task, result: TaskResult) -> Verdict:
        """Check ``proof`` against ``task`` and ``result``; never raises for bad input."""


@runtime_checkable
class MessageHandler(Protocol):
    """What a transport delivers to: the kernel's gate (:class:`gaia_core.inbound.Gate`), never the node itself.

    The transport hands over each envelope as received, with the :class:`Channel` its connection
    authenticated when it has one; the gate authenticates (signature or bound channel, staleness,
    replay) before any handler of the node sees the message.
    """

    def authenticate(self, envelope: Envelope, channel: Channel | None = None) -> None:
        """Check a message the transport handles itself (replies, its own hellos); SignatureError when refused."""

    def on_request(self, envelope: Envelope, channel: Channel | None = None) -> bytes:
        """Authenticate, then answer a request; the returned bytes are the reply body (GaiaError: a refusal)."""

    def on_announce(self, envelope: Envelope, channel: Channel | None = None) -> None:
        """Authenticate, then take an announcement (e.g. a NodeRecord); a refused one is counted and dropped."""

    def on_peer(self, peer: PeerInfo) -> None:
        """Learn that a peer changed state (up or down)."""


@runtime_checkable
class Transport(Protocol):
    """Moves signed envelopes between nodes; one is active per node.

    Its keys and address format are its own: a transport that authenticates channels puts the keys
    peers bind in the record's ``transport`` extension and exposes the completed record as a
    ``record`` attribute, which the node then announces (signed).
    """

    def start(self, handler: MessageHandler, record: NodeRecord) -> str:
        """Bind, start serving and return the address peers should dial; deliver every message to ``handler``."""

    def stop(self) -> None:
        """Close every socket and thread; idempotent."""

    def connect(self, address: str) -> None:
        """Dial a bootstrap address; the peer becomes known once it answers."""

    def request(self, peer_id: str, kind: str, body: bytes, *, timeout: float = 10.0) -> bytes:
        """Send a signed request and wait for the reply body (NodeError on timeout or refusal)."""

    def announce(self, kind: str, body: bytes) -> None:
        """Broadcast a signed announcement to every peer (may be dropped under load)."""

    def peers(self) -> list[PeerInfo]:
        """Every peer known, up or down."""


@runtime_checkable
class Queue(Protocol):
    """The only door from admission to a runner: bounded, ordered, thread-safe."""

    def admit(self, task: Task, *, envelope: Envelope | None = None, claimed_id: str | None = None) -> str:
        """Run :func:`gaia_core.admission.check` (``claimed_id``: the id the submitter sent) and the
        queue's bounds, then enqueue ``task`` and return its id; or raise RejectedError with a reason.

        Anything but a Task is ``invalid``. One submitter may not fill the queue, and ``priority``
        orders only a submitter's own tasks (it never lets one submitter starve another).
        """

    def next(self, timeout: float | None = None) -> Task | None:
        """The next task to run, waiting up to ``timeout`` seconds (None: until one comes or the
        queue closes); None when none came, and at once after :meth:`close`."""

    def done(self, task_id: str, status: Status) -> bool:
        """Record how a task handed out by :meth:`next` ended; False when it was not running."""

    def cancel(self, task_id: str) -> bool:
        """Drop a queued task; its ``cancelled`` result appears in :meth:`take_dropped`."""

    def take_dropped(self) -> list[TaskResult]:
        """Results (expired, cancelled) of admitted tasks that will not run, each given once."""

    def stats(self) -> QueueStats:
        """Depth, counters, wait-time percentiles and per-submitter share."""

    def close(self) -> None:
        """Refuse further admissions (``queue_full``, no retry hint), cancel what is queued (its
        results go to :meth:`take_dropped`) and wake blocked consumers; idempotent."""


def _name(_i: object, _a: object, value: str) -> None:
    if not value or not value.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"provider name must be alphanumeric with - or _, got {value!r}")


@frozen
class RunnerSpec:
    """Registers a runner for the task kinds it can run."""

    name: str = field(validator=_name)
    task_kinds: tuple[str, ...] = field(converter=str_tuple)
    factory: Callable[[NodeContext], Runner]


@frozen
class BenchmarkSpec:
    """Registers a benchmark provider; reports of every active one are merged."""

    name: str = field(validator=_name)
    factory: Callable[[NodeContext], Benchmark]


@frozen
class ProverSpec:
    """Registers a prover under its proof scheme name."""

    scheme: str = field(validator=_name)
    factory: Callable[[NodeContext], Prover]
    simulated: bool = False


@frozen
class TransportSpec:
    """Registers a transport; exactly one may be active."""

    name: str = field(validator=_name)
    factory: Callable[[NodeContext], Transport]


@frozen
class QueueSpec:
    """Registers a task queue; exactly one may be active."""

    name: str = field(validator=_name)
    factory: Callable[[NodeContext], Queue]


SPEC_TYPES = {
    "runner": RunnerSpec,
    "benchmark": BenchmarkSpec,
    "prover": ProverSpec,
    "transport": TransportSpec,
    "queue": QueueSpec,
}
