"""The data model: attrs records shared by the kernel, the plugins and the wire.

Records are frozen values. Every field is typed and range-checked on
construction, so a record decoded from outside bytes (see :mod:`gaia_core.codec`)
is valid or was refused with a :class:`~gaia_core.errors.CodecError`.
"""

from __future__ import annotations

import enum
import functools
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from attrs import field, frozen, validators as v

from gaia_core import codec
from gaia_core.errors import ValidationError

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}\Z")

#: Capabilities a task may ask for and a node may allow (deny wins).
CAPABILITIES = frozenset({"fs", "net", "env", "clock", "random"})


def _hex64(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _HEX64.match(value):
        raise ValueError(f"{attribute.name} must be 64 lowercase hex characters, got {value!r:.80}")


def _opt_hex64(inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if value:
        _hex64(inst, attribute, value)


def _name(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _NAME.match(value):
        raise ValueError(f"{attribute.name} must be a short lowercase name, got {value!r:.80}")


def _capabilities(_inst: object, attribute: attrs.Attribute[Any], value: frozenset[str]) -> None:
    unknown = set(value) - CAPABILITIES
    if unknown:
        raise ValueError(
            f"{attribute.name} has unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}"
        )


def str_tuple(items: Iterable[str]) -> tuple[str, ...]:
    """attrs converter: any iterable of names to the tuple a record holds."""
    return tuple(items)


def _str_set(items: Iterable[str]) -> frozenset[str]:
    return frozenset(items)


_positive = v.gt(0)
_non_negative = v.ge(0)
_U63 = v.lt(1 << 63)  # counters stored in SQLite INTEGER columns


#: Latest time a record may carry: the end of year 9999 (every date library can show it).
MAX_TIME = 253_402_300_799.0


class InvalidValue(ValidationError, ValueError):
    """A record field holds a number the model refuses: NaN, infinite, negative or an absurd time."""


def _finite(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    """Refuse NaN and infinities (None passes: the field is optional)."""
    if value is not None and not math.isfinite(value):
        raise InvalidValue(f"{attribute.name} must be a finite number, got {value!r}",
                           hint="NaN and infinity are not allowed")


def _amount(inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    """A finite quantity that cannot be negative (seconds, joules, watts, percent, load)."""
    _finite(inst, attribute, value)
    if value is not None and value < 0:
        raise InvalidValue(f"{attribute.name} must not be negative, got {value!r}")


def _time(inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    """A POSIX timestamp between 1970 and the end of year 9999 (None passes)."""
    _finite(inst, attribute, value)
    if value is not None and not 0 <= value <= MAX_TIME:
        raise InvalidValue(f"{attribute.name} must be a POSIX time between 0 and {MAX_TIME:.0f} "
                           f"(1970 to 9999), got {value!r}", hint="send seconds since the epoch, e.g. time.time()")


def _opt_count(inst: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    """An optional byte count: None or an integer >= 0."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidValue(f"{attribute.name} must be an integer >= 0 or None, got {value!r}")


def _figure(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A measurement value that is a number must be finite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidValue(f"{attribute.name} must be a finite number, got {value!r}",
                           hint="report a figure that could not be measured as None with source 'unknown'")


#: The most cores a node may offer (and a record may announce).
MAX_CORES = 1024

#: The most blobs one task may name (a node's admission may take fewer, see docs/blobs.md).
MAX_TASK_BLOBS = 64

#: The range of ``Task.priority``; it orders a submitter's own tasks (see docs/queue.md).
PRIORITY_RANGE = (-1000, 1000)


def _priority(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    """An integer priority inside :data:`PRIORITY_RANGE`."""
    low, high = PRIORITY_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidValue(f"{attribute.name} must be an integer from {low} to {high}, got {value!r}")


def _cores(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    """A core count from 1 to :data:`MAX_CORES` (a peer's record is its own claim)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CORES:
        raise InvalidValue(f"{attribute.name} must be an integer from 1 to {MAX_CORES}, got {value!r}")


def _benchmark(_inst: object, attribute: attrs.Attribute[Any], value: Mapping[str, float]) -> None:
    """Announced benchmark figures: every one finite."""
    for name, figure in value.items():
        if not isinstance(figure, (int, float)) or not math.isfinite(figure):
            raise InvalidValue(f"{attribute.name}[{name!r}] must be a finite number, got {figure!r}")


class Status(str, enum.Enum):
    """How a task ended. Only ``ok`` carries a meaningful output."""

    OK = "ok"
    TRAP = "trap"
    OUT_OF_FUEL = "out_of_fuel"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    OUTPUT_TOO_LARGE = "output_too_large"
    INVALID = "invalid"
    REJECTED = "rejected"
    ERROR = "error"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class _StateEnum(str, enum.Enum):
    """A state held as its string value: ``str()`` and f-strings give the value itself, so
    state.db rows, JSON output and printed lines are the same as with plain strings."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class TaskState(_StateEnum):
    """Where one task of a job stands: ``pending`` until it is settled, then one of the others."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobStatus(_StateEnum):
    """Where a job stands: ``running`` while any task is pending, then finished or cancelled."""

    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class VerdictStatus(_StateEnum):
    """The outcome of checking a proof or a result."""

    VALID = "valid"
    INVALID = "invalid"
    UNVERIFIED = "unverified"


@frozen
class Limits:
    """What one task may use. A node offers maxima of the same shape (``NodeRecord.offer``)."""

    fuel: int = field(default=10_000_000_000, validator=(v.instance_of(int), _positive))
    timeout_s: float = field(default=30.0, converter=float, validator=(_finite, v.gt(0.0)))
    memory_bytes: int = field(default=256 << 20, validator=(v.instance_of(int), _positive))
    stack_bytes: int = field(default=1 << 20, validator=(v.instance_of(int), _positive))
    max_output_bytes: int = field(default=16 << 20, validator=(v.instance_of(int), _positive))
    max_tables: int = field(default=4, validator=(v.instance_of(int), _non_negative))
    max_table_elements: int = field(default=100_000, validator=(v.instance_of(int), _non_negative))
    max_instances: int = field(default=4, validator=(v.instance_of(int), _positive))
    capabilities: frozenset[str] = field(
        default=frozenset(), converter=_str_set, validator=_capabilities
    )

    def exceeds(self, offer: Limits) -> list[str]:
        """Name each limit of this task that asks for more than ``offer`` allows."""
        over = [
            f"{name}={getattr(self, name)} > {getattr(offer, name)}"
            for name in ("fuel", "timeout_s", "memory_bytes", "stack_bytes", "max_output_bytes",
                         "max_tables", "max_table_elements", "max_instances")
            if getattr(self, name) > getattr(offer, name)
        ]
        denied = self.capabilities - offer.capabilities
        if denied:
            over.append(f"capabilities {sorted(denied)} not allowed")
        return over


@frozen
class Task:
    """One unit of work. Its :attr:`id` is the content id of its canonical encoding.

    ``module`` carries the module's bytes, or is ``None`` when the receiver
    already holds ``module_id``; it is not part of the identity.
    """

    module_id: str = field(validator=_hex64)
    input: bytes = field(default=b"", validator=v.instance_of(bytes), repr=lambda b: f"<{len(b)} bytes>")
    entry: str = field(default="run", validator=(v.instance_of(str), v.min_len(1), v.max_len(128)))
    kind: str = field(default="wasm", validator=_name)
    limits: Limits = field(factory=Limits, validator=v.instance_of(Limits))
    submitter: str = field(default="", validator=_opt_hex64)
    priority: int = field(default=0, validator=_priority)
    deadline: float | None = field(default=None, converter=attrs.converters.optional(float), validator=_time)
    job: str = field(default="", validator=(v.instance_of(str), v.max_len(128)))
    #: Ids of the blobs the task reads (model weights, inputs, images), in the order the runner sees them;
    #: fetched by the worker before the task runs (docs/blobs.md).
    blobs: tuple[str, ...] = field(default=(), converter=str_tuple,
                                   validator=v.deep_iterable(_hex64, v.max_len(MAX_TASK_BLOBS)))
    module: bytes | None = field(
        default=None, eq=False, validator=v.optional(v.instance_of(bytes)),
        repr=lambda b: "None" if b is None else f"<{len(b)} bytes>",
    )

    @classmethod
    def create(cls, module: bytes | bytearray | memoryview, **kwargs: Any) -> Task:
        """Build a task around ``module`` bytes, computing its ``module_id``."""
        from gaia_core.hashing import content_id

        module = bytes(module)
        return cls(module_id=content_id(module), module=module, **kwargs)

    @functools.cached_property
    def input_id(self) -> str:
        """The content id of the input bytes."""
        from gaia_core.hashing import content_id

        return content_id(self.input)

    @functools.cached_property
    def id(self) -> str:
        """The task id: the same work has the same id on every node."""
        from gaia_core.codec import canonical_id

        return canonical_id(self.identity())

    def identity(self) -> list[object]:
        """The fields that define the work, in a fixed order (the module bytes excluded)."""
        limits = attrs.astuple(self.limits, recurse=False)
        fields = [self.kind, self.module_id, self.entry, self.input_id,
                  [*limits[:-1], sorted(self.limits.capabilities)],
                  self.submitter, self.priority, self.deadline, self.job]
        return [*fields, list(self.blobs)] if self.blobs else fields  # no blobs: the ids tasks had before them

    def without_module(self) -> Task:
        """The same task without the module bytes (for peers that have it)."""
        return attrs.evolve(self, module=None)


@frozen
class TaskResult:
    """What running a task produced, and what it cost."""

    task_id: str = field(validator=_hex64)
    status: Status = field(converter=Status)
    node_id: str = field(default="", validator=_opt_hex64)
    output: bytes = field(default=b"", validator=v.instance_of(bytes), repr=lambda b: f"<{len(b)} bytes>")
    output_id: str = field(default="", validator=_opt_hex64)
    message: str = field(default="", validator=v.instance_of(str))
    fuel_used: int = field(default=0, validator=(v.instance_of(int), _non_negative, _U63))
    wall_s: float = field(default=0.0, converter=float, validator=_amount)
    cpu_s: float = field(default=0.0, converter=float, validator=_amount)
    peak_memory_bytes: int = field(default=0, validator=(v.instance_of(int), _non_negative, _U63))
    energy_j: float | None = field(default=None, converter=attrs.converters.optional(float), validator=_amount)
    energy_source: str = field(default="unknown", validator=v.in_({"measured", "estimated", "unknown"}))
    finished_at: float = field(factory=time.time, converter=float, validator=_time)

    @property
    def ok(self) -> bool:
        """True when the task completed and ``output`` is its answer."""
        return self.status is Status.OK


@frozen
class Proof:
    """A prover's claim that ``node_id`` ran ``task_id`` to the given result."""

    scheme: str = field(validator=(v.instance_of(str), v.min_len(1), v.max_len(64)))
    task_id: str = field(validator=_hex64)
    node_id: str = field(validator=_hex64)
    commitment: bytes = field(validator=v.instance_of(bytes))
    body: bytes = field(validator=v.instance_of(bytes), repr=lambda b: f"<{len(b)} bytes>")
    signature: bytes = field(default=b"", validator=v.instance_of(bytes))
    proving_s: float = field(default=0.0, converter=float, validator=_amount)
    simulated: bool = field(default=False, validator=v.instance_of(bool))
    created_at: float = field(factory=time.time, converter=float, validator=_time)


@frozen
class Verdict:
    """The outcome of checking a proof or a result: ``valid``, ``invalid`` or ``unverified``."""

    status: VerdictStatus = field(converter=VerdictStatus)
    reason: str = ""
    task_id: str = ""
    scheme: str = ""

    @property
    def ok(self) -> bool:
        """True only for a valid verdict."""
        return self.status is VerdictStatus.VALID


@frozen
class Measurement:
    """One figure of a benchmark report, and whether it was measured or estimated."""

    name: str = field(validator=(v.instance_of(str), v.min_len(1)))
    value: float | int | str | None = field(validator=_figure)
    unit: str = ""
    source: str = field(default="measured", validator=v.in_({"measured", "estimated", "reported", "unknown"}))
    reason: str = ""
    provider: str = ""


#: The benchmark role's role-neutral figure, by which peers are ranked: the name of the measurement every
#: benchmark provider reports, in :data:`SCORE_UNIT`: the node's whole throughput for tasks relative to
#: one reference core (1.0 = one reference core; see docs/benchmarking.md).
SCORE = "score"
#: The unit of :data:`SCORE`.
SCORE_UNIT = "reference cores"


def _measurements(items: Iterable[Measurement]) -> tuple[Measurement, ...]:
    return tuple(items)


@frozen
class BenchmarkReport:
    """What a node can do. Reports of several benchmark providers are merged."""

    entries: tuple[Measurement, ...] = field(default=(), converter=_measurements)
    measured_at: float = field(factory=time.time, converter=float, validator=_time)

    def get(self, name: str, default: object = None) -> object:
        """The value of the named measurement, or ``default``."""
        for entry in self.entries:
            if entry.name == name:
                return entry.value
        return default

    def merge(self, other: BenchmarkReport) -> BenchmarkReport:
        """Combine two reports; ``other``'s entries win on a name clash."""
        names = {e.name for e in other.entries}
        kept = tuple(e for e in self.entries if e.name not in names)
        return BenchmarkReport(kept + other.entries, max(self.measured_at, other.measured_at))

    @property
    def score(self) -> float | None:
        """The :data:`SCORE` measurement when it is a finite positive number, else None."""
        value = self.get(SCORE)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        return float(value) if ok else None  # type: ignore[arg-type]

    def summary(self) -> dict[str, float]:
        """The numeric measurements by name (what a NodeRecord announces, :data:`SCORE` among them)."""
        return {
            e.name: float(e.value)
            for e in self.entries
            if isinstance(e.value, (int, float)) and not isinstance(e.value, bool)
        }


@frozen
class ResourceSample:
    """A live reading of what the node's machine is doing."""

    at: float = field(factory=time.time, converter=float, validator=_time)
    cpu_percent: float | None = field(default=None, validator=_amount)
    ram_used_bytes: int | None = field(default=None, validator=_opt_count)
    ram_total_bytes: int | None = field(default=None, validator=_opt_count)
    rss_bytes: int | None = field(default=None, validator=_opt_count)
    gpu_util_percent: float | None = field(default=None, validator=_amount)
    vram_used_bytes: int | None = field(default=None, validator=_opt_count)
    vram_total_bytes: int | None = field(default=None, validator=_opt_count)
    power_w: float | None = field(default=None, validator=_amount)
    power_source: str = field(default="unknown", validator=v.in_({"measured", "estimated", "unknown"}))


@frozen
class NodeRecord:
    """Who a node is and what it offers; announced signed inside an :class:`Envelope`.

    ``transport`` is the transport's extension, signed with the rest: the keys its channels authenticate,
    by scheme (e.g. ``{"curve": <32 bytes>}``), filled in by the transport at start. The kernel reads no
    key of it by name. A record from before the extension, whose ``curve_key`` field held the CurveZMQ
    key, still decodes: the codec takes the key as ``transport["curve"]``.
    """

    node_id: str = field(validator=_hex64)
    addresses: tuple[str, ...] = field(default=(), converter=str_tuple)
    name: str = ""
    version: str = ""
    plugins: tuple[str, ...] = field(default=(), converter=str_tuple)
    task_kinds: tuple[str, ...] = field(default=(), converter=str_tuple)
    offer: Limits = field(factory=Limits)
    cores: int = field(default=1, validator=_cores)
    benchmark: Mapping[str, float] = field(factory=dict, validator=_benchmark)
    load: float = field(default=0.0, converter=float, validator=_amount)
    updated_at: float = field(factory=time.time, converter=float, validator=_time)
    transport: Mapping[str, bytes] = field(factory=dict)

    @transport.validator
    def _check_transport(self, attribute: attrs.Attribute[Any], value: Mapping[str, bytes]) -> None:
        if not isinstance(value, Mapping) or len(value) > 16:
            raise InvalidValue(f"{attribute.name} must be a table of at most 16 keys")
        for scheme, key in value.items():
            named = isinstance(scheme, str) and 1 <= len(scheme) <= 32
            if not named or not isinstance(key, bytes) or len(key) > 1024:
                raise InvalidValue(f"{attribute.name}[{scheme!r}] must map a name of 1-32 characters to at most 1 KiB")

    def channel_keys(self) -> dict[str, bytes]:
        """The keys this record binds to its node id, by channel scheme (what a transport may vouch for)."""
        return dict(self.transport)

    @property
    def score(self) -> float:
        """The node's announced benchmark score (:data:`SCORE`), 1.0 (one reference core) when it gives none."""
        return self.benchmark.get(SCORE, 1.0)


def _structure_record(data: object, cls: type[NodeRecord]) -> NodeRecord:
    """Build a NodeRecord from plain data, taking a record from before the transport extension too.

    Such a record carries ``curve_key`` (empty or 32 bytes): a non-empty one becomes
    ``transport["curve"]``; one that contradicts the record's own ``transport["curve"]`` is refused.
    """
    if isinstance(data, dict) and "curve_key" in data:
        data = dict(data)
        key = data.pop("curve_key")
        if not isinstance(key, bytes) or len(key) not in (0, 32):
            raise InvalidValue("curve_key (the CurveZMQ key of an older record) must be empty or 32 bytes")
        transport = data.get("transport", {})
        if key and isinstance(transport, dict):
            if transport.get("curve", key) != key:
                raise InvalidValue("curve_key and transport['curve'] name different keys; the sender is broken")
            data["transport"] = {**transport, "curve": key}
    return _record_fields()(data, cls)


@functools.cache
def _record_fields() -> Callable[[Any, type[NodeRecord]], NodeRecord]:
    """cattrs' own structuring of a NodeRecord's fields (made at first use, as cattrs makes its hooks)."""
    return codec.converter.gen_structure_attrs_fromdict(NodeRecord)


# A predicate hook: registering the class itself would make cattrs resolve its annotations (docs show them).
codec.converter.register_structure_hook_func(lambda cls: cls is NodeRecord, _structure_record)


@frozen
class Envelope:
    """A signed message between nodes (see :mod:`gaia_core.envelope`)."""

    kind: str = field(validator=(v.instance_of(str), v.min_len(1), v.max_len(64)))
    sender: str = field(validator=_hex64)
    sent_at: float = field(converter=float, validator=_time)
    nonce: bytes = field(validator=(v.instance_of(bytes), v.min_len(16), v.max_len(16)))
    body: bytes = field(validator=v.instance_of(bytes), repr=lambda b: f"<{len(b)} bytes>")
    signature: bytes = field(default=b"", validator=v.instance_of(bytes))
