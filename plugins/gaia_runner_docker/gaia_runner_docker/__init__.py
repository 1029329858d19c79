"""gaia-runner-docker: OCI container tasks (kind ``oci``) through the Docker Engine API, zero-trust by default."""

from gaia_runner_docker.runner import DockerRunner
from gaia_runner_docker.settings import DockerSettings

__all__ = ["DockerRunner", "DockerSettings"]
