"""The runner's settings: the ``[runner_docker]`` config table, validated."""

from __future__ import annotations

import re
from typing import Any

from attrs import field, frozen, validators as v

from gaia_core.plugin_api import Config

#: An image named by digest, as ``docker images --no-trunc`` prints its id.
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _digests(_: object, attribute: Any, value: list[str]) -> None:
    bad = [d for d in value if not isinstance(d, str) or not DIGEST.fullmatch(d)]
    if bad:
        raise ValueError(f"{attribute.name}: {bad[0]!r} is not an image digest (sha256: and 64 hex digits)")


@frozen
class DockerSettings:
    """``[runner_docker]``: which images this node runs, and the limits no task can raise."""

    #: Image digests (``sha256:<64 hex>``) the operator allows; nothing runs unless listed (default deny).
    allow: list[str] = field(factory=list, validator=_digests)
    #: Processes (and threads) one container may hold at once.
    pids_limit: int = field(default=64, validator=[v.ge(1), v.le(1 << 20)])
    #: CPU cores one container may use (a CFS quota; fractions allowed).
    cpus: float = field(default=1.0, validator=[v.gt(0), v.le(1024)])
    #: Size of the writable tmpfs scratch at /tmp (it counts against the task's memory too).
    scratch_bytes: int = field(default=16 << 20, validator=[v.ge(1 << 20), v.le(1 << 40)])
    #: The user:group tasks run as; never root.
    user: str = field(default="65534:65534", validator=v.matches_re(r"[1-9][0-9]{0,9}:[1-9][0-9]{0,9}"))
    #: Docker Engine address; empty = ``$DOCKER_HOST``, else the local socket.
    base_url: str = ""

    @classmethod
    def from_config(cls, config: Config) -> DockerSettings:
        """Read and check the ``[runner_docker]`` table (ConfigError naming the bad key)."""
        return config.section_as("runner_docker", cls)

    def allows(self, image: str) -> bool:
        """True when the operator listed ``image`` (a ``sha256:`` digest)."""
        return image in self.allow

