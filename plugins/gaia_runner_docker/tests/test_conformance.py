"""The kernel's runner conformance suite, run against DockerRunner with the local busybox image."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import allowing

from gaia_core.model import Task
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.runner import RunnerCases, RunnerTests
from gaia_runner_docker import DockerRunner


def oci(image: str, entry: str, data: bytes = b"") -> Task:
    """An ``oci`` task running ``entry`` in ``image``."""
    return Task(module_id=image.removeprefix("sha256:"), kind="oci", entry=entry, input=data)


class TestDockerRunner(RunnerTests):
    @pytest.fixture
    def make_runner(self, busybox: str) -> Callable[[NodeContext], DockerRunner]:
        return lambda context: DockerRunner(allowing(context, busybox))

    @pytest.fixture
    def runner_cases(self, busybox: str) -> RunnerCases:
        return RunnerCases(
            ok=oci(busybox, "cat /gaia/input", b"conformance"),
            ok_output=b"conformance",
            invalid=oci(busybox, "/no/such/command"),
            trap=oci(busybox, "false"),
            forever=oci(busybox, "sleep 3600"),
        )
