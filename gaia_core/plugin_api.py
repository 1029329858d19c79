"""The plugin API: everything a GAIA plugin imports, from one module.

A plugin imports from here and nowhere else in ``gaia_core`` (its tests may also use
:mod:`gaia_core.testing`)::

    from gaia_core.plugin_api import RunnerSpec, Status, Task, TaskResult, hookimpl

The names in :data:`__all__` are the promise: the kernel may move its internals between
modules, but these names keep their meaning within a major version. They are, as conda's
``conda.plugins`` and llm's top-level package offer theirs:

- ``hookimpl``, the marker of hook implementations (the hooks are listed in
  docs/plugin-authoring.md);
- the role protocols a provider satisfies and the spec records a role hook yields;
- the records of the data model and the wire;
- the exception hierarchy (raise these, with a message that says what to do);
- helpers: content ids and Merkle roots, the files of a task's blobs (``blob_paths``), the codec
  (``codec.encode`` / ``codec.decode``, which validate), admission (``admission.check``), envelopes,
  identities, configuration, and the scheduler behind queues.

docs/plugin-authoring.md lists each name with its signature (generated from this module by
``python -m gaia_core.docgen``).
"""

from __future__ import annotations

from gaia_core import admission, codec, hookimpl
from gaia_core.blobs.tasks import blob_paths
from gaia_core.config import Config, Home, load as load_config
from gaia_core.envelope import Refused, ReplayGuard, open_envelope, seal
from gaia_core.errors import (
    CodecError,
    ConfigError,
    GaiaError,
    IdentityError,
    NodeError,
    PluginError,
    RejectedError,
    SignatureError,
    TaskError,
    UsageError,
    ValidationError,
)
from gaia_core.hashing import blake3_digest, content_id, merkle_root
from gaia_core.identity import Identity, load_private_key, save_private_key, verify_signature
from gaia_core.inbound import Gate, RefusalLog
from gaia_core.model import (
    CAPABILITIES,
    SCORE,
    SCORE_UNIT,
    BenchmarkReport,
    Envelope,
    JobStatus,
    Limits,
    Measurement,
    NodeRecord,
    Proof,
    ResourceSample,
    Status,
    Task,
    TaskResult,
    TaskState,
    Verdict,
    VerdictStatus,
)
from gaia_core.roles import (
    ROLES,
    Benchmark,
    BenchmarkSpec,
    Channel,
    MessageHandler,
    NodeContext,
    PeerInfo,
    Prover,
    ProverSpec,
    Queue,
    QueueSpec,
    QueueStats,
    Runner,
    RunnerSpec,
    Transport,
    TransportSpec,
)
from gaia_core.scheduling import Scheduler

__all__ = [
    # the hook marker
    "hookimpl",
    # role protocols: what a provider satisfies
    "Runner",
    "Benchmark",
    "Prover",
    "Transport",
    "MessageHandler",
    "Channel",
    "Queue",
    # spec records: what a role hook yields
    "ROLES",
    "RunnerSpec",
    "BenchmarkSpec",
    "ProverSpec",
    "TransportSpec",
    "QueueSpec",
    "NodeContext",
    "PeerInfo",
    "QueueStats",
    # records of the data model and the wire
    "Task",
    "Limits",
    "CAPABILITIES",
    "TaskResult",
    "Status",
    "Proof",
    "Verdict",
    "VerdictStatus",
    "TaskState",
    "JobStatus",
    "BenchmarkReport",
    "SCORE",
    "SCORE_UNIT",
    "Measurement",
    "ResourceSample",
    "NodeRecord",
    "Envelope",
    # errors
    "GaiaError",
    "UsageError",
    "ConfigError",
    "IdentityError",
    "PluginError",
    "ValidationError",
    "CodecError",
    "SignatureError",
    "Refused",
    "RejectedError",
    "TaskError",
    "NodeError",
    # helpers
    "content_id",
    "blake3_digest",
    "merkle_root",
    "blob_paths",
    "codec",
    "admission",
    "seal",
    "open_envelope",
    "ReplayGuard",
    "Gate",
    "RefusalLog",
    "Identity",
    "verify_signature",
    "load_private_key",
    "save_private_key",
    "Config",
    "Home",
    "load_config",
    "Scheduler",
]
