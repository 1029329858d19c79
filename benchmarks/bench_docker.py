"""Container task overhead: gaia-runner-docker's start-to-result against a bare ``docker run``.

Prints ``measure: gaia=X baseline=Y ratio=Z`` lines (milliseconds, median of RUNS, interleaved so
load affects both alike), on the local busybox image (built on first use):

* oci_task_ms: ``DockerRunner.run`` of a task whose command is ``true`` (a fresh container with the
  zero-trust host config, its input mounted, stdout read, the container removed) against
  ``docker run --rm IMAGE true`` with the docker CLI, the same image, measured in the same run.
  Target: ratio <= 1.2.
* oci_echo_ms: the same with ``cat /gaia/input`` on a 64 KiB input against
  ``docker run --rm -i IMAGE cat`` fed the same bytes on stdin.
* oci_blob_image_ms: a task whose image is not on the engine but comes as its blob (a ``docker save``
  archive in the node's blob store: checked, loaded, run) against ``docker load -i ARCHIVE`` then
  ``docker run --rm IMAGE true``; the image is removed (untimed) before each run of either.

Needs a Docker engine (.ci/ensure-docker). Run: .venv/bin/python benchmarks/bench_docker.py (about a minute).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gaia_core.blobs.store import home_store
from gaia_core.config import Config, Home
from gaia_core.identity import Identity
from gaia_core.model import Task
from gaia_core.roles import NodeContext
from gaia_runner_docker import DockerRunner, DockerSettings
from gaia_runner_docker.engine import EngineUnavailable, connect
from gaia_runner_docker.images import busybox_image, busybox_rootfs, import_rootfs

RUNS = 15
PAYLOAD = bytes(range(256)) * 256


def line(measure: str, gaia: float, baseline: float) -> None:
    ratio = gaia / baseline if baseline else float("inf")
    print(f"{measure}: gaia={gaia:.4g} baseline={baseline:.4g} ratio={ratio:.3g}", flush=True)


def timed_ms(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000.0


def compare(measure: str, gaia: Callable[[], object], bare: Callable[[], object],
            before: Callable[[], object] = lambda: None) -> None:
    """Time ``gaia`` and ``bare`` in turns, ``before`` (untimed) ahead of each; print the medians."""
    before(), gaia(), before(), bare()  # warm both paths
    ours, theirs = [], []
    for _ in range(RUNS):
        before()
        ours.append(timed_ms(gaia))
        before()
        theirs.append(timed_ms(bare))
    line(measure, statistics.median(ours), statistics.median(theirs))


def main() -> int:
    try:
        client = connect(DockerSettings())
    except EngineUnavailable as exc:
        print(f"bench_docker: skipped: {exc}", file=sys.stderr)
        return 0
    image = busybox_image(client)
    rootfs = busybox_rootfs()  # another image than busybox's by its recipe label: it is removed and loaded again
    shipped = import_rootfs(client, "bench-blob", "bench-blob" * 4, lambda path: path.write_bytes(rootfs))
    with tempfile.TemporaryDirectory() as root:
        home = Home(Path(root))
        archive = Path(root) / "image.tar"
        subprocess.run(["docker", "save", shipped, "-o", str(archive)], check=True, timeout=120)
        store = home_store(home)
        blob = store.add_file(archive).id
        store.close()
        context = NodeContext(config=Config(extra={"runner_docker": {"allow": [image, shipped]}}), home=home,
                              identity=Identity.generate())
        runner = DockerRunner(context)
        try:
            true = Task(module_id=image.removeprefix("sha256:"), kind="oci", entry="true")
            echo = Task(module_id=image.removeprefix("sha256:"), kind="oci", entry="cat /gaia/input", input=PAYLOAD)

            def run(task: Task, output: bytes) -> None:
                result = runner.run(task)
                assert result.ok and result.output == output, result.message

            def docker_run(*argv: str, data: bytes | None = None) -> None:
                done = subprocess.run(["docker", "run", "--rm", *argv], input=data, capture_output=True,
                                      check=True, timeout=120)
                assert data is None or done.stdout == data

            compare("oci_task_ms", lambda: run(true, b""), lambda: docker_run(image, "true"))
            compare("oci_echo_ms", lambda: run(echo, PAYLOAD), lambda: docker_run("-i", image, "cat", data=PAYLOAD))
            carried = Task(module_id=shipped.removeprefix("sha256:"), kind="oci", entry="true", blobs=(blob,))

            def load_and_run() -> None:
                subprocess.run(["docker", "load", "-q", "-i", str(archive)], capture_output=True, check=True,
                               timeout=120)
                docker_run(shipped, "true")

            compare("oci_blob_image_ms", lambda: run(carried, b""), load_and_run,
                    before=lambda: subprocess.run(["docker", "rmi", "-f", shipped], capture_output=True, timeout=120))
        finally:
            runner.close()
            subprocess.run(["docker", "rmi", "-f", shipped], capture_output=True, timeout=120)
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
