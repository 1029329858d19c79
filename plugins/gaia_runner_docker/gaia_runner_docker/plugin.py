"""Hook implementations of gaia-runner-docker: the ``oci`` runner and its admission check."""

from __future__ import annotations

from collections.abc import Iterator

from gaia_core.plugin_api import Envelope, NodeContext, RejectedError, RunnerSpec, Status, Task, hookimpl
from gaia_runner_docker.runner import DockerRunner, Refusal, image_of, open_runner
from gaia_runner_docker.settings import DockerSettings


@hookimpl
def gaia_runners() -> Iterator[RunnerSpec]:
    """Register the container runner for tasks of kind ``oci``."""
    yield RunnerSpec(name="docker", task_kinds=("oci",), factory=DockerRunner)


@hookimpl
def gaia_validate_task(task: Task, envelope: Envelope | None, context: NodeContext) -> None:
    """Refuse ``oci`` tasks this node will not run: module bytes instead of a digest, an image the
    operator did not allow or does not have, or no reachable Docker engine."""
    if task.kind != "oci":
        return
    runner = open_runner(context)
    try:
        if runner is not None:
            runner.check(task)
        elif task.module is not None:
            raise Refusal(Status.INVALID, "an oci task names its image by digest in module_id and carries no "
                          "module bytes")
        elif not DockerSettings.from_config(context.config).allows(image_of(task)):
            raise Refusal(Status.REJECTED, f"image {image_of(task)} is not allowed on this node (default deny); "
                          "the operator lists it in [runner_docker] allow")
    except Refusal as exc:
        reason = "bad_module" if exc.status is Status.INVALID else "no_runner"
        raise RejectedError(reason, exc.message, hint="see docs/docker.md") from None
