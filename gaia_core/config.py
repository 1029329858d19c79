"""Node configuration: a TOML file under the node's home, read into typed sections.

The home is ``--home``, else ``$GAIA_HOME``, else platformdirs' user data dir
for ``gaia``. It holds ``config.toml``, ``identity/`` (keys), ``cache/`` and
``state.db``. Tables other than the kernel's belong to plugins and are
handed to them as plain dicts through :meth:`Config.section`.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
import platformdirs
import tomli_w
from attrs import field, frozen, validators as v

from gaia_core.codec import describe_errors
from gaia_core.errors import ConfigError, UsageError
from gaia_core.model import MAX_CORES, Limits

_Table = TypeVar("_Table", bound=attrs.AttrsInstance)

CONFIG_FILE = "config.toml"
#: Modes of the home (and the directories in it) and of every file GAIA writes there.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
#: The shortest ``[network] heartbeat_s``: shorter periods keep a core busy with heartbeats alone.
MIN_HEARTBEAT_S = 0.1
_ADDRESS = re.compile(r"[a-z][a-z0-9+.-]*://(?:\[[^\]]+\]|[^:/\[\]\s]+):(?P<port>\*|\d+)")


@frozen
class Home:
    """Where one node keeps its state."""

    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Home:
        """``home``, else ``$GAIA_HOME``, else the platform's user data dir."""
        chosen = home or os.environ.get("GAIA_HOME") or platformdirs.user_data_path("gaia")
        return cls(Path(chosen).expanduser().resolve())

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def identity_dir(self) -> Path:
        return self.root / "identity"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def state_db(self) -> Path:
        return self.root / "state.db"

    @property
    def pause_file(self) -> Path:
        """Present while the node is paused (`gaia pause`), so a restart stays paused."""
        return self.root / "paused"

    @property
    def log_file(self) -> Path:
        """A background node's JSON-lines log."""
        return self.root / "node.log"

    @property
    def control_record(self) -> Path:
        """Names the control socket's private directory when the home's path is too long for a socket."""
        return self.root / "control.path"

    def make_private(self) -> Home:
        """Create the home, or tighten an existing one: the directory 0700, the files GAIA keeps in it 0600.

        Set explicitly, so a permissive umask or a home made by an older GAIA leaves nothing readable
        by other users (state.db and its journals are tightened by the store that opens them).
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
            self.root.chmod(PRIVATE_DIR)
        except OSError as exc:
            raise UsageError(f"cannot use {self.root} as the GAIA home: {exc.strerror}",
                             hint="give --home (or GAIA_HOME) a directory you can create and write") from None
        if self.identity_dir.is_dir():
            self.identity_dir.chmod(PRIVATE_DIR)
        for path in (self.config_file, self.log_file, self.control_record, self.root / "node.pid"):
            if path.is_file():
                path.chmod(PRIVATE_FILE)
        return self


def check_address(address: str) -> str:
    """``address`` when peers could dial it: ``SCHEME://HOST:PORT``, port 0 to 65535 or ``*`` (any free port).

    ValueError saying what is wrong otherwise (``inproc://``, a port out of range, no port).
    """
    example = "give SCHEME://HOST:PORT, e.g. tcp://0.0.0.0:7700"
    if address.startswith("inproc://"):
        raise ValueError(f"{address!r} is reachable only inside one process, never by peers; {example}")
    match = _ADDRESS.fullmatch(address)
    if match is None:
        raise ValueError(f"{address!r} is not an address of the form SCHEME://HOST:PORT; {example}")
    port = match["port"]
    if port != "*" and int(port) > 65535:
        raise ValueError(f"{address!r}: port {port} is out of range; give a port from 0 to 65535 (or * for any)")
    return address


def _address(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        check_address(value)
    except ValueError as exc:
        raise ValueError(f"{attribute.name} {exc}") from None


def _finite(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number of seconds, not {value}")


@frozen
class NodeSection:
    """``[node]``: who this node is and what of the machine it offers."""

    name: str = ""
    cores: int = field(default=0, validator=[v.ge(0), v.le(MAX_CORES)])  # 0 = every core
    #: The share of this machine's logical cores that run tasks at most (BOINC's "use at most N% of the CPUs").
    cpu_percent: int = field(default=100, validator=[v.instance_of(int), v.ge(1), v.le(100)])
    #: Run only when idle: tasks wait while other programs use more than this share of the CPU (0: off).
    busy_percent: int = field(default=0, validator=[v.instance_of(int), v.ge(0), v.le(100)])
    listen: str = field(default="tcp://127.0.0.1:7700", validator=_address)
    advertise: str = ""  # address peers should dial; defaults to listen
    log_level: str = field(default="info", validator=v.in_({"debug", "info", "warning", "error"}))

    def task_cores(self) -> int:
        """How many tasks run at once: ``cores`` (0: every logical core), below 100 ``cpu_percent`` at most
        that share of the logical cores (at least 1)."""
        logical = os.cpu_count() or 1
        wanted = self.cores or logical
        return wanted if self.cpu_percent == 100 else max(1, min(wanted, logical * self.cpu_percent // 100))


@frozen
class PluginsSection:
    """``[plugins]``: which installed plugins to load (all when ``load`` is absent)."""

    load: list[str] | None = None
    block: list[str] = field(factory=list)


@frozen
class AdmissionSection:
    """``[admission]``: size limits on what a submitter may send."""

    max_module_bytes: int = field(default=32 << 20, validator=v.gt(0))
    max_input_bytes: int = field(default=64 << 20, validator=v.gt(0))


@frozen
class NetworkSection:
    """``[network]``: peers and liveness.

    ``security``, ``auth`` and ``allowlist`` belong to the transport's own table (e.g. ``[comm_zmq]``);
    they stay here so that older configurations keep working: a transport reads them when its table lacks them.
    """

    bootstrap: list[str] = field(factory=list)
    security: str = field(default="curve", validator=v.in_({"curve", "insecure"}))
    auth: str = field(default="open", validator=v.in_({"open", "allowlist"}))
    allowlist: list[str] = field(factory=list)
    heartbeat_s: float = field(default=1.0, validator=[v.ge(MIN_HEARTBEAT_S), _finite])
    down_after_s: float = field(default=5.0, validator=[v.gt(0), _finite])


@frozen
class QueueSection:
    """``[queue]``: bounds of the local task queue."""

    capacity: int = field(default=10_000, validator=v.gt(0))
    capacity_bytes: int = field(default=1 << 30, validator=v.gt(0))


@frozen
class ProverSection:
    """``[prover]``: the proof scheme this node proves with."""

    scheme: str = "mock-groth16"


@frozen
class VerificationSection:
    """``[verification]``: how a submitting node checks the results it gets back."""

    spot_check: float = field(default=0.0, validator=[v.ge(0.0), v.le(1.0)])  # fraction re-executed locally


@frozen
class PrivacySection:
    """``[privacy]``: how long task payloads are kept after delivery."""

    retention_s: float = field(default=60.0, validator=v.ge(0))
    #: a worker holds at most this many bytes of undelivered results for one submitter (oldest dropped first)
    outbox_bytes_per_submitter: int = field(default=64 << 20, validator=v.gt(0))
    #: ... and at most this many for all submitters together (the largest holder's oldest dropped first)
    outbox_bytes: int = field(default=256 << 20, validator=v.gt(0))
    #: a submitter deletes the inputs and outputs of its jobs this long after they finished
    job_retention_s: float = field(default=86400.0, validator=v.ge(0))


@frozen
class Config:
    """The whole configuration of one node."""

    node: NodeSection = field(factory=NodeSection)
    plugins: PluginsSection = field(factory=PluginsSection)
    offer: Limits = field(factory=Limits)
    admission: AdmissionSection = field(factory=AdmissionSection)
    network: NetworkSection = field(factory=NetworkSection)
    queue: QueueSection = field(factory=QueueSection)
    prover: ProverSection = field(factory=ProverSection)
    verification: VerificationSection = field(factory=VerificationSection)
    privacy: PrivacySection = field(factory=PrivacySection)
    extra: Mapping[str, Mapping[str, Any]] = field(factory=dict)

    def section(self, name: str) -> Mapping[str, Any]:
        """A plugin's own table (``[name]``), empty when absent."""
        return self.extra.get(name, {})

    def section_as(self, name: str, cls: type[_Table]) -> _Table:
        """A plugin's own table ``[name]`` as the attrs class ``cls`` (its defaults for absent keys); ConfigError,
        one line naming the bad or unknown key, with ``cls``'s keys as the hint."""
        keys = f"keys: {', '.join(f.name for f in attrs.fields(cls))}"
        try:
            return _converter.structure(dict(self.section(name)), cls)
        except cattrs.BaseValidationError as exc:
            raise ConfigError(f"config.toml: {describe_errors(exc, f'[{name}]')}", hint=keys) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config.toml [{name}]: {exc}", hint=keys) from None

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data, plugin tables included."""
        data = _converter.unstructure(self)
        extra = data.pop("extra")
        data["offer"]["capabilities"] = sorted(data["offer"]["capabilities"])
        return {**data, **extra}


_converter = cattrs.Converter(forbid_extra_keys=True)
_KERNEL_TABLES = {f.name for f in attrs.fields(Config)} - {"extra"}


def _strings(value: Any, cls: Any) -> Any:
    """A TOML array of strings as ``cls`` (a list or set of str); a bare string is refused (cattrs would split it)."""
    if isinstance(value, str):
        raise ValueError(f"a string where an array belongs; write it in brackets: {json.dumps([value])}")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{value!r} is not an array of strings")
    return typing.get_origin(cls)(value)


_converter.register_structure_hook_func(lambda cls: cls in (list[str], frozenset[str]), _strings)


def _misspelt_table(names: Iterable[str], source: str) -> None:
    """ConfigError when a table's name is close to a kernel table's (``[netwrok]``): it would be ignored."""
    for name in names:
        near = difflib.get_close_matches(name, _KERNEL_TABLES, n=1, cutoff=0.75)
        if near:
            raise ConfigError(f"{source}: unknown table [{name}]; did you mean [{near[0]}]?",
                              hint=f"the kernel's tables are {', '.join(f'[{t}]' for t in sorted(_KERNEL_TABLES))}; "
                                   "any other table belongs to a plugin")


def from_dict(data: Mapping[str, Any], *, source: str = "config") -> Config:
    """Build a :class:`Config` from parsed TOML, naming the bad key on error."""
    kernel = {k: val for k, val in data.items() if k in _KERNEL_TABLES}
    extra = {k: val for k, val in data.items() if k not in _KERNEL_TABLES}
    bad = [k for k, val in extra.items() if not isinstance(val, dict)]
    if bad:
        raise ConfigError(f"{source}: top-level key {bad[0]!r} must be a [table]")
    _misspelt_table(extra, source)
    try:
        config = _converter.structure(kernel, Config)
    except cattrs.BaseValidationError as exc:
        raise ConfigError(f"{source}: {describe_errors(exc, 'config')}",
                          hint="fix the file, or see `gaia config show` for the defaults") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}", hint="fix the file, or see `gaia config show` for the defaults") from None
    return attrs.evolve(config, extra=extra)


def load(home: Home) -> Config:
    """The node's configuration: defaults overlaid with ``config.toml`` when it exists."""
    path = home.config_file
    if not path.exists():
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", hint="fix the file or move it away") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return from_dict(data, source=str(path))


def to_toml(data: Mapping[str, Any]) -> str:
    """Render plain data as TOML (with tomli-w): tables nest, and ``None`` values are left out (TOML has none)."""
    return tomli_w.dumps(_without_none(data))


def _without_none(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _without_none(value) if isinstance(value, Mapping) else value
            for key, value in data.items() if value is not None}


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (a temporary file renamed over it), mode 0600 whatever the umask."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_default(home: Home, *, name: str = "") -> Path:
    """Write a config file holding the defaults (all tables), returning its path."""
    data = Config(node=NodeSection(name=name)).to_dict()
    header = "# GAIA node configuration. Every key is optional; see docs/configuration.md.\n\n"
    write_private(home.make_private().config_file, header + to_toml(data))
    return home.config_file
