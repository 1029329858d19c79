"""The OCI container runner: one task in, one TaskResult out, whatever the container does.

Every task gets a fresh container of an operator-allowed image, named by digest, under zero-trust
defaults (:func:`host_config`): no network, a read-only root filesystem, every capability dropped, no
new privileges, the engine's default seccomp profile, a non-root user, pids/memory/CPU limits, a
size-capped tmpfs at /tmp (and at each VOLUME the image declares), and no host path but the task's
input, mounted read-only. The output is the container's stdout, read as it comes and capped; a
wall-clock timeout kills. Containers carry the node's owner label, so none outlives its task: removed
after each run, on ``close`` and at start-up after a crash (:func:`gaia_runner_docker.engine.reap`).
"""

from __future__ import annotations

import logging
import shlex
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
import urllib3
from attrs import define, field
from docker.types import LogConfig, Mount, Ulimit
from docker.utils.socket import STDOUT, frames_iter

from gaia_core.plugin_api import GaiaError, NodeContext, Status, Task, TaskResult, blob_paths, content_id
from gaia_runner_docker import archive, engine
from gaia_runner_docker.settings import DockerSettings

#: Where a task finds its input inside the container (read-only); also in ``$GAIA_INPUT``.
INPUT_PATH = "/gaia/input"
#: Bytes of a container's stderr kept for the message of a failed task.
STDERR_TAIL = 4096
#: Seconds allowed to kill and remove a container, and to drain its output after it ended.
CLEANUP_S = 10.0
#: Seconds past a task's timeout (counted from before its container is created) after which the container,
#: if still there, is removed by any node on the engine (its owner died): room for a slow create (the vfs
#: storage driver copies the image) and start, the owner's kill and removal (CLEANUP_S each), clock skew.
EXPIRY_GRACE_S = 300.0
#: Exit codes of a command the container could not run (not found, not executable).
_CANNOT_RUN = {126, 127}
#: The runners of this process that are open: admission asks the node's own for its verdict.
_open_runners: weakref.WeakSet[DockerRunner] = weakref.WeakSet()
#: Longest single wait on the engine, so an output overflow is acted on within it.
WAIT_SLICE_S = 0.5


class Refusal(Exception):
    """A task this node will not run as given; ``status`` is INVALID or REJECTED."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def image_of(task: Task) -> str:
    """The image digest an ``oci`` task names (``sha256:`` + its ``module_id``)."""
    return f"sha256:{task.module_id}"


def host_config(client: docker.DockerClient, task: Task, settings: DockerSettings, input_file: Path,
                volumes: Iterable[str] = ()) -> Any:
    """The zero-trust HostConfig of one task's container (see the module docstring); each of the image's
    ``volumes`` is a scratch tmpfs as /tmp is, never a volume on the engine's disk."""
    limits = task.limits
    scratch = f"rw,noexec,nosuid,nodev,size={settings.scratch_bytes}"
    return client.api.create_host_config(
        network_mode="none", read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges"],
        pids_limit=settings.pids_limit, mem_limit=limits.memory_bytes, memswap_limit=limits.memory_bytes,
        nano_cpus=int(settings.cpus * 1e9), ulimits=[Ulimit(name="nofile", soft=1024, hard=1024)],
        tmpfs={path: scratch for path in ("/tmp", *volumes)},
        mounts=[Mount(INPUT_PATH, str(input_file), type="bind", read_only=True)],
        log_config=LogConfig(type=LogConfig.types.NONE), privileged=False, ipc_mode="private",
    )


@define
class _Output:
    """Reads a container's stdout (capped) and stderr (a tail) from its attach stream."""

    limit: int
    stdout: list[bytes] = field(factory=list)
    size: int = 0
    stderr: bytes = b""
    overflow: threading.Event = field(factory=threading.Event)
    done: threading.Event = field(factory=threading.Event)

    def drain(self, sock: Any) -> None:
        """Read ``sock`` to its end. Past the cap, stdout is read and dropped (the engine would block the
        container's end on an unread stream) and ``overflow`` is set, so the container gets killed."""
        try:
            for stream, data in frames_iter(sock, tty=False):
                if stream == STDOUT:
                    if self.overflow.is_set() or self.size + len(data) > self.limit:
                        self.overflow.set()
                        continue
                    self.stdout.append(data)
                    self.size += len(data)
                else:
                    self.stderr = (self.stderr + data)[-STDERR_TAIL:]
        except (OSError, ValueError):
            pass  # the container was removed under the stream, or the run closed it (ValueError: closed file)
        finally:
            self.done.set()

    def tail(self) -> str:
        """The end of stderr as one line for a message, or ''."""
        text = engine.one_line(self.stderr.decode("utf-8", "replace"))
        return f"; stderr: {text[-500:]}" if text else ""


class DockerRunner:
    """Runs tasks of kind ``oci``: a container of an allowed image, under zero-trust defaults.

    :param context: the node's context; settings come from its ``[runner_docker]`` table.
    """

    #: Containers are not metered by instructions: their tasks end by the wall-clock timeout.
    supports_fuel = False

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.settings = DockerSettings.from_config(context.config)
        self._node_id = context.identity.node_id if context.identity is not None else ""
        self._owner = engine.owner(context)
        self._lock = threading.Lock()
        self._live: set[str] = set()
        self._closed = False
        self._tmp: Path | None = None  # made at the first run: holds each run's input file
        self._client: docker.DockerClient | None = None
        #: Why the runner cannot run containers ('' when it can).
        self.unavailable = ""
        try:
            self._client = engine.connect(self.settings)
        except engine.EngineUnavailable as exc:
            self.unavailable = str(exc)
            # a warning only for an operator who allowed images: without an allowlist no container would run anyway
            level = logging.WARNING if self.settings.allow else logging.INFO
            context.log.log(level, "gaia-runner-docker is unavailable: %s", exc)
        else:
            try:
                engine.reap(self._client, self._owner, context.log)
                engine.sweep(self._client, context.log)
            except (docker.errors.DockerException, requests.RequestException) as exc:
                context.log.warning("gaia-runner-docker could not remove containers left by an earlier run: %s",
                                    engine.first_line(exc))
        _open_runners.add(self)

    # ----------------------------------------------------------------- public API

    def check(self, task: Task) -> None:
        """Raise :class:`Refusal` when this node will not run ``task`` (no engine, image not allowed, or absent
        while the task names no blob that could hold it)."""
        if task.module is not None:
            raise Refusal(Status.INVALID, "an oci task names its image by digest in module_id and carries no "
                          "module bytes")
        image = image_of(task)
        if not self.settings.allows(image):
            raise Refusal(Status.REJECTED, f"image {image} is not allowed on this node (default deny); the "
                          "operator lists it in [runner_docker] allow")
        client = self._engine()
        if not task.blobs and not image_present(client, image):
            raise Refusal(Status.REJECTED, f"image {image} is not on this node; the operator loads it "
                          "(docker load or docker import) and checks its id, or the task names a blob "
                          "holding it (docker save)")
        try:
            argv = shlex.split(task.entry)
        except ValueError as exc:
            raise Refusal(Status.INVALID, f"entry {task.entry!r} is not a command line: {exc}") from None
        if not argv:
            raise Refusal(Status.INVALID, "entry is empty: give the command to run in the image")

    def run(self, task: Task) -> TaskResult:
        """Run ``task`` in a fresh container; every failure is a TaskResult, never an exception."""
        wall = time.perf_counter()
        try:
            status, message, output = self._run(task)
        except Refusal as exc:
            status, message, output = exc.status, exc.message, b""
        except (docker.errors.DockerException, requests.RequestException) as exc:
            status, message, output = Status.ERROR, f"Docker engine error: {engine.first_line(exc)}", b""
        except Exception as exc:  # a runner bug must not take the node down
            self.context.log.exception("docker runner failed on task %s", task.id)
            status, message, output = Status.ERROR, f"runner error: {type(exc).__name__}: {exc}", b""
        ok = status is Status.OK
        return TaskResult(task_id=task.id, status=status, node_id=self._node_id, output=output if ok else b"",
                          output_id=content_id(output) if ok else "", message=message,
                          wall_s=time.perf_counter() - wall)

    def close(self) -> None:
        """Kill and remove every container still running and close the engine connection; idempotent."""
        _open_runners.discard(self)
        with self._lock:
            self._closed = True
            live, self._live = set(self._live), set()
            client, self._client = self._client, None
        if client is not None:
            for container in live:
                try:
                    _remove(client, container)
                except (docker.errors.DockerException, requests.RequestException) as exc:
                    self.context.log.warning("gaia-runner-docker could not remove container %s: %s",
                                             container[:12], engine.first_line(exc))
            client.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # ----------------------------------------------------------------- one run

    def _engine(self) -> docker.DockerClient:
        with self._lock:
            if self._closed:
                raise Refusal(Status.ERROR, "the runner is closed: this node is stopping")
            if self._client is None:
                raise Refusal(Status.REJECTED, f"gaia-runner-docker is unavailable: {self.unavailable}")
            return self._client

    def _run(self, task: Task) -> tuple[Status, str, bytes]:
        self.check(task)
        client = self._engine()
        if task.blobs and not image_present(client, image_of(task)):  # without blobs, check() found it present
            self._load(client, task)
        run_dir = Path(tempfile.mkdtemp(dir=self._tmpdir()))
        try:
            run_dir.chmod(0o711)
            input_file = run_dir / "input"
            input_file.write_bytes(task.input)
            input_file.chmod(0o444)
            return self._contain(client, task, input_file)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _load(self, client: docker.DockerClient, task: Task) -> None:
        """Load the task's image from the first of its blobs that is a ``docker save`` archive of it (checked
        before loading); Refusal when none is."""
        image = image_of(task)
        try:
            paths = blob_paths(self.context, task)
        except GaiaError as exc:
            raise Refusal(Status.REJECTED, f"image {image} is not on this node and its blobs are not here: "
                          f"{exc}") from None
        why = []
        for blob, path in zip(task.blobs, paths, strict=True):
            try:
                held = archive.archive_image(path)
                if held == image:
                    archive.load(client, path, image)
                    self.context.log.info("gaia-runner-docker loaded image %s from blob %s", image, blob[:16])
                    if image_present(client, image):
                        return
                    why.append(f"blob {blob[:16]}: the engine did not keep {image} after loading it")
                else:
                    why.append(f"blob {blob[:16]} holds {held}")
            except archive.ArchiveError as exc:
                why.append(f"blob {blob[:16]}: {exc}")
        raise Refusal(Status.REJECTED, f"image {image} is not on this node and no blob of the task is a docker "
                      f"save archive of it ({'; '.join(why)[:800]})")

    def _tmpdir(self) -> Path:
        with self._lock:
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="gaia-oci-"))
                self._tmp.chmod(0o711)  # the container's user reads its input file by name, lists nothing
            return self._tmp

    def _contain(self, client: docker.DockerClient, task: Task, input_file: Path) -> tuple[Status, str, bytes]:
        volumes = client.api.inspect_image(image_of(task))["Config"].get("Volumes") or {}
        try:
            created = client.api.create_container(
                image_of(task), command=shlex.split(task.entry), user=self.settings.user, working_dir="/tmp",
                network_disabled=True, environment={"GAIA_INPUT": INPUT_PATH},
                labels={engine.OWNER_LABEL: self._owner, engine.TASK_LABEL: task.id,
                        engine.EXPIRES_LABEL: f"{time.time() + task.limits.timeout_s + EXPIRY_GRACE_S:.0f}"},
                host_config=host_config(client, task, self.settings, input_file, volumes))
        except docker.errors.APIError as exc:
            if exc.is_client_error():
                return Status.INVALID, f"cannot create the container: {engine.explain(exc)}", b""
            raise
        container = created["Id"]
        with self._lock:
            self._live.add(container)
        try:
            return self._watch(client, container, task)
        finally:
            with self._lock:
                self._live.discard(container)
            _remove(client, container)
            try:
                engine.sweep(client, self.context.log)
            except (docker.errors.DockerException, requests.RequestException) as exc:
                self.context.log.warning("gaia-runner-docker could not remove expired containers: %s",
                                         engine.first_line(exc))

    def _watch(self, client: docker.DockerClient, container: str, task: Task) -> tuple[Status, str, bytes]:
        limits = task.limits
        out = _Output(limits.max_output_bytes)
        sock = client.api.attach_socket(container, params={"stdout": 1, "stderr": 1, "stream": 1})
        reader = threading.Thread(target=out.drain, args=(sock,), name="gaia-oci-output", daemon=True)
        reader.start()
        try:
            try:
                client.api.start(container)
            except docker.errors.APIError as exc:
                if exc.is_client_error():
                    return Status.INVALID, f"cannot run {task.entry!r}: {engine.explain(exc)}", b""
                raise
            deadline = time.monotonic() + limits.timeout_s
            code = self._wait(client, container, out, deadline)
            if out.overflow.is_set():
                return Status.OUTPUT_TOO_LARGE, f"output exceeds max_output_bytes={limits.max_output_bytes}", b""
            if code is None:
                return Status.TIMEOUT, f"ran past timeout_s={limits.timeout_s:g}; the container was killed", b""
            out.done.wait(CLEANUP_S)  # the stream ends once the container has
            if out.overflow.is_set():
                return Status.OUTPUT_TOO_LARGE, f"output exceeds max_output_bytes={limits.max_output_bytes}", b""
            state = client.api.inspect_container(container)["State"]
            if state.get("OOMKilled"):
                return Status.OUT_OF_MEMORY, f"killed at memory_bytes={limits.memory_bytes}" + out.tail(), b""
            if code in _CANNOT_RUN:
                return Status.INVALID, f"cannot run {task.entry!r} (exit code {code})" + out.tail(), b""
            if code != 0:
                return Status.TRAP, f"the container exited with code {code}" + out.tail(), b""
            return Status.OK, "", b"".join(out.stdout)
        finally:
            sock.close()
            reader.join(CLEANUP_S)

    @staticmethod
    def _wait(client: docker.DockerClient, container: str, out: _Output, deadline: float) -> int | None:
        """The container's exit code; None when it ran past ``deadline``. Kills it past the deadline or
        when its output overflows."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                answer = client.api.wait(container, timeout=min(left, WAIT_SLICE_S))  # type: ignore[arg-type]
                return int(answer["StatusCode"])  # requests takes float seconds; the stubs say int
            except requests.RequestException as exc:
                if not still_running(exc):
                    raise
                if out.overflow.is_set():
                    break
        try:
            client.api.kill(container)
        except docker.errors.APIError:
            pass  # it ended meanwhile
        return None


def still_running(exc: requests.RequestException) -> bool:
    """True when a wait on the engine ended by its own read timeout (the container still runs), False
    when the engine failed or went away."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    return isinstance(exc, requests.exceptions.ConnectionError) and bool(exc.args) \
        and isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError)


def image_present(client: docker.DockerClient, image: str) -> bool:
    """True when the engine holds ``image``."""
    try:
        client.api.inspect_image(image)
    except docker.errors.NotFound:
        return False
    return True


def _remove(client: docker.DockerClient, container: str) -> None:
    """Kill and remove ``container``; gone already is fine."""
    try:
        client.api.remove_container(container, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: removal already in progress
            raise


def open_runner(context: NodeContext) -> DockerRunner | None:
    """The open runner of the node ``context`` belongs to, if any."""
    return next((r for r in list(_open_runners) if r.context.home == context.home), None)
