"""Hostile containers: each is contained with a typed status, leaves no container, and the runner keeps serving."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import attrs
import docker
import pytest
from attrs import frozen
from test_conformance import oci

from gaia_core.identity import Identity
from gaia_core.model import Limits, Status
from gaia_runner_docker import DockerRunner
from gaia_runner_docker.engine import EXPIRES_LABEL, OWNER_LABEL, owner


@frozen
class Hostile:
    name: str
    entry: str
    status: Status
    message: str
    limits: Limits = Limits(timeout_s=10.0)


CORPUS = [
    Hostile("fork_bomb", "sh -c 'while true; do sleep 100 & done'", Status.TRAP, "can't fork"),
    Hostile("memory_bomb", "dd if=/dev/zero of=/dev/null bs=256M count=1", Status.OUT_OF_MEMORY,
            "memory_bytes=16777216", Limits(memory_bytes=16 << 20, timeout_s=10.0)),
    Hostile("rootfs_write", "sh -c 'echo x > /bin/x'", Status.TRAP, "Read-only file system"),
    Hostile("input_write", "sh -c 'echo x >> /gaia/input'", Status.TRAP, "can't create /gaia/input"),
    Hostile("host_file", "cat /etc/shadow /root/.bashrc", Status.TRAP, "No such file"),
    Hostile("sleep_forever", "sleep 3600", Status.TIMEOUT, "ran past timeout_s=1", Limits(timeout_s=1.0)),
    Hostile("stdout_flood", "yes", Status.OUTPUT_TOO_LARGE, "max_output_bytes=65536",
            Limits(max_output_bytes=65536, timeout_s=10.0)),
    Hostile("scratch_flood", "dd if=/dev/zero of=/tmp/big bs=1M count=64", Status.TRAP, "No space left"),
    Hostile("stderr_flood", "sh -c 'yes >&2'", Status.TIMEOUT, "ran past timeout_s=1", Limits(timeout_s=1.0)),
]


def leftovers(client: docker.DockerClient, runner: DockerRunner) -> list[str]:
    """Containers of this runner's node still known to the engine."""
    label = f"{OWNER_LABEL}={owner(runner.context)}"
    return [c["Id"] for c in client.api.containers(all=True, filters={"label": label})]


@pytest.fixture
def runner(make_runner: Callable[..., DockerRunner], busybox: str, suid_image: str) -> DockerRunner:
    return make_runner(busybox, suid_image)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_contained(runner: DockerRunner, client: docker.DockerClient, busybox: str, case: Hostile) -> None:
    result = runner.run(attrs.evolve(oci(busybox, case.entry), limits=case.limits))
    assert result.status is case.status, result.message
    assert case.message in result.message
    assert result.output == b"" and result.output_id == ""
    assert result.wall_s < case.limits.timeout_s + 5
    assert leftovers(client, runner) == []
    assert runner.run(oci(busybox, "cat /gaia/input", b"still serving")).output == b"still serving"


def test_network_is_off(runner: DockerRunner, busybox: str) -> None:
    """Only loopback exists inside, and a host service on 127.0.0.1 is never reached."""
    accepted: list[object] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        port = server.getsockname()[1]
        result = runner.run(oci(busybox, f"sh -c 'ls /sys/class/net; echo hi | nc -w 2 127.0.0.1 {port}'"))
        try:
            accepted.append(server.accept())
        except TimeoutError:
            pass
    assert accepted == []
    assert result.status is Status.TRAP
    assert runner.run(oci(busybox, "ls /sys/class/net")).output.split() == [b"lo"]


def test_setuid_binary_gains_nothing(runner: DockerRunner, suid_image: str) -> None:
    """A setuid-root binary in the image still runs as nobody, with no capabilities (no-new-privileges)."""
    result = runner.run(oci(suid_image, "/opt/suid/cat /proc/self/status"))
    assert result.status is Status.OK, result.message
    fields = dict(line.split(":", 1) for line in result.output.decode().splitlines() if ":" in line)
    assert fields["Uid"].split() == ["65534"] * 4
    assert fields["CapEff"].strip() == fields["CapPrm"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1" and fields["Seccomp"].strip() == "2"


def test_a_volume_the_image_declares_is_capped_scratch(make_runner: Callable[..., DockerRunner],
                                                      volume_image: str) -> None:
    """An image's VOLUME was a writable anonymous volume on the engine's disk, with no size cap."""
    runner = make_runner(volume_image, scratch_bytes=1 << 20)
    result = runner.run(oci(volume_image, "sh -c 'mount | grep /data; dd if=/dev/zero of=/data/big bs=1M count=8'"))
    assert result.status is Status.TRAP and "No space left" in result.message, result.message


def test_close_kills_running_containers(make_runner: Callable[..., DockerRunner], client: docker.DockerClient,
                                        busybox: str) -> None:
    runner = make_runner(busybox)
    results = []
    thread = threading.Thread(target=lambda: results.append(runner.run(oci(busybox, "sleep 3600"))))
    thread.start()
    deadline = time.monotonic() + 20
    while not leftovers(client, runner) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(client, runner), "the task's container never appeared"
    runner.close()
    thread.join(30)
    assert not thread.is_alive()
    assert results and results[0].status is not Status.OK
    assert leftovers(client, runner) == []


def test_start_up_removes_containers_left_by_a_crash(make_runner: Callable[..., DockerRunner],
                                                     client: docker.DockerClient, busybox: str) -> None:
    first = make_runner(busybox)
    label = {OWNER_LABEL: owner(first.context)}
    orphan = client.api.create_container(busybox, command=["sleep", "3600"], labels=label, network_disabled=True)
    client.api.start(orphan["Id"])
    make_runner(busybox)  # the node starts again
    assert leftovers(client, first) == []


def test_start_up_leaves_another_nodes_containers_alone(make_runner: Callable[..., DockerRunner],
                                                       client: docker.DockerClient, busybox: str) -> None:
    """Two nodes on one engine, their homes at the same path (one per container, as in compose.yaml): the
    second's start-up must not take the first's running task."""
    first = make_runner(busybox)
    running = client.api.create_container(busybox, command=["sleep", "3600"], network_disabled=True,
                                          labels={OWNER_LABEL: owner(first.context)})
    try:
        client.api.start(running["Id"])
        other = attrs.evolve(first.context, identity=Identity.generate())
        DockerRunner(other).close()  # the other node starts (and stops)
        assert leftovers(client, first) == [running["Id"]]
    finally:
        client.api.remove_container(running["Id"], force=True)


def test_a_container_past_its_end_is_removed_by_any_node(make_runner: Callable[..., DockerRunner],
                                                         client: docker.DockerClient, busybox: str) -> None:
    """A node killed -9 and never restarted: the next run of any node on the engine removes the container its
    task left once the task's time is over for good (and leaves one whose time is not)."""
    runner = make_runner(busybox)  # started before: its next run does it
    made = {}
    for name, expires in (("expired", time.time() - 1), ("running", time.time() + 3600)):
        labels = {OWNER_LABEL: f"dead-node-{name}", EXPIRES_LABEL: f"{expires:.0f}"}
        made[name] = client.api.create_container(busybox, command=["sleep", "3600"], labels=labels,
                                                 network_disabled=True)["Id"]
        client.api.start(made[name])
    try:
        assert runner.run(oci(busybox, "true")).status is Status.OK
        alive = {c["Id"] for c in client.api.containers(all=True, filters={"label": OWNER_LABEL})}
        assert made["expired"] not in alive and made["running"] in alive
    finally:
        for container in made.values():
            try:
                client.api.remove_container(container, force=True)
            except docker.errors.NotFound:
                pass


def test_a_wait_that_times_out_is_told_from_an_engine_gone(client: docker.DockerClient, busybox: str) -> None:
    """Only a wait's own read timeout means "still running"; an engine that went away ends the run at once
    (as ``error``) instead of being polled until the task's timeout."""
    import requests

    from gaia_runner_docker.runner import still_running

    created = client.api.create_container(busybox, command=["sleep", "30"], network_disabled=True)
    try:
        client.api.start(created["Id"])
        with pytest.raises(requests.RequestException) as timed:
            client.api.wait(created["Id"], timeout=0.2)
        assert still_running(timed.value)
    finally:
        client.api.remove_container(created["Id"], force=True)
    gone = docker.APIClient(base_url="unix:///nonexistent/gaia-test/docker.sock", version="1.41")
    with pytest.raises(requests.RequestException) as refused:
        gone.wait("any", timeout=0.2)
    assert not still_running(refused.value)


def test_a_stream_closed_under_its_reader_ends_it_quietly() -> None:
    """The run closes the attach stream once it is over; a reader still on it got "I/O operation on closed
    file" (ValueError), a thread traceback on the node's stderr."""
    from gaia_runner_docker.runner import _Output

    ours, theirs = socket.socketpair()
    with ours, theirs:
        stream = ours.makefile("rb", buffering=0)
        stream.close()
        out = _Output(limit=1024)
        out.drain(stream)  # raised ValueError
        assert out.done.is_set() and out.stdout == []


def test_what_a_container_prints_reaches_a_message_without_terminal_escapes(runner: DockerRunner,
                                                                             busybox: str) -> None:
    """A failed task's message carries the end of its stderr, shown on the submitter's terminal: an escape
    sequence in it (clear the screen, retitle the window) must arrive inert."""
    result = runner.run(oci(busybox, r"""sh -c 'printf "\033]0;owned\007\033[2Jbad\n" >&2; exit 3'"""))
    assert result.status is Status.TRAP and "bad" in result.message, result.message
    assert result.message.isprintable()
