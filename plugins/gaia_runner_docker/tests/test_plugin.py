"""The plugin as the kernel sees it: entry point, runner spec, admission, config table, and a real node
that keeps serving through hostile containers, or runs WASM alone when no Docker engine answers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from conftest import allowing
from test_conformance import oci

from gaia_core import admission, config as config_mod, devnet, hookimpl, plugins
from gaia_core.config import Config, Home
from gaia_core.errors import ConfigError, RejectedError
from gaia_core.identity import Identity
from gaia_core.model import Limits, Status, Task, TaskResult
from gaia_core.node import Node
from gaia_core.roles import NodeContext, Runner
from gaia_runner_docker import DockerRunner

NO_ENGINE = "unix:///nonexistent/gaia-test/docker.sock"
#: An image digest for the checks that need no engine.
SOME_IMAGE = "sha256:" + "ef" * 32
#: A submitter that is never reachable: this node only runs the tasks.
ABSENT = "cd" * 32


@pytest.fixture(scope="module")
def loaded() -> plugins.Plugins:
    return plugins.load(["gaia-runner-docker"], strict=True)


def test_registers_the_oci_runner(loaded: plugins.Plugins, node_context: NodeContext) -> None:
    spec = loaded.runners_by_kind()["oci"]
    assert spec.name == "docker"
    runner = spec.factory(node_context)
    try:
        assert isinstance(runner, Runner) and isinstance(runner, DockerRunner)
    finally:
        runner.close()
    assert loaded.infos["gaia-runner-docker"].status == "active"


def _context(loaded: plugins.Plugins, context: NodeContext) -> NodeContext:
    return attrs.evolve(context, hook=loaded.hook, task_kinds=frozenset({"oci"}))


def test_admission_refuses_what_the_node_will_not_run(loaded: plugins.Plugins, node_context: NodeContext,
                                                      make_runner: Callable[..., DockerRunner],
                                                      busybox: str, suid_image: str) -> None:
    runner = make_runner(busybox, "sha256:" + "ab" * 32)
    context = _context(loaded, runner.context)
    admission.check(oci(busybox, "true"), context)
    cases = {
        "not allowed on this node (default deny)": oci(suid_image, "true"),
        "is not on this node": oci("sha256:" + "ab" * 32, "true"),
        "carries no module bytes": Task.create(b"x", kind="oci", entry="true"),
        "not a command line": oci(busybox, "sh -c 'unclosed"),
    }
    for words, task in cases.items():
        with pytest.raises(RejectedError) as info:
            admission.check(task, context)
        assert words in str(info.value)
        assert info.value.reason in {"no_runner", "bad_module"}
        assert runner.run(task).status in {Status.REJECTED, Status.INVALID}


def test_admission_without_a_runner_applies_the_allowlist(loaded: plugins.Plugins, node_context: NodeContext,
                                                          busybox: str) -> None:
    with pytest.raises(RejectedError) as info:
        admission.check(oci(busybox, "true"), _context(loaded, node_context))
    assert "[runner_docker] allow" in str(info.value)
    admission.check(oci(busybox, "true"), _context(loaded, allowing(node_context, busybox)))


def test_other_kinds_are_not_its_business(node_context: NodeContext) -> None:
    from gaia_runner_docker.plugin import gaia_validate_task

    assert gaia_validate_task(Task(module_id="ab" * 32, kind="wasm"), None, node_context) is None


@pytest.mark.parametrize("table, key", [({"allow": ["latest"]}, "allow"), ({"bogus": 1}, "bogus"),
                                        ({"user": "0:0"}, "user"), ({"pids_limit": 0}, "pids_limit")])
def test_bad_config_table_is_a_config_error(node_context: NodeContext, table: dict[str, object], key: str) -> None:
    context = attrs.evolve(node_context, config=Config(extra={"runner_docker": table}))
    with pytest.raises(ConfigError) as info:
        DockerRunner(context)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_no_engine_is_one_reason_and_a_refusal(node_context: NodeContext) -> None:
    busybox = SOME_IMAGE
    runner = DockerRunner(allowing(node_context, busybox, base_url=NO_ENGINE))
    try:
        assert "no Docker engine" in runner.unavailable or "does not answer" in runner.unavailable
        assert "\n" not in runner.unavailable
        result = runner.run(oci(busybox, "true"))
        assert result.status is Status.REJECTED and "gaia-runner-docker is unavailable" in result.message
    finally:
        runner.close()


@pytest.mark.parametrize("images, level", [((), logging.INFO), ((SOME_IMAGE,), logging.WARNING)])
def test_no_engine_warns_only_an_operator_who_allowed_images(node_context: NodeContext,
                                                            caplog: pytest.LogCaptureFixture,
                                                            images: tuple[str, ...], level: int) -> None:
    caplog.set_level(logging.INFO)
    DockerRunner(allowing(node_context, *images, base_url=NO_ENGINE)).close()
    said = [r for r in caplog.records if "gaia-runner-docker is unavailable" in r.getMessage()]
    assert [r.levelno for r in said] == [level]  # one line; users without Docker and an allowlist see no warning


# ---------------------------------------------------------------------------- a real node


class _Finished:
    """Records the results ``gaia_task_finished`` reports."""

    def __init__(self) -> None:
        self.results: dict[str, TaskResult] = {}
        self.lock = threading.Lock()

    @hookimpl
    def gaia_task_finished(self, task: Task, result: TaskResult, context: NodeContext) -> None:
        with self.lock:
            self.results[task.id] = result


def _node(root: Path, tables: dict[str, dict[str, object]]) -> tuple[Node, _Finished]:
    home = Home(root)
    root.mkdir(parents=True)
    Identity.generate().save(home.identity_dir)
    home.config_file.write_text(config_mod.to_toml({
        "node": {"name": root.name, "listen": f"tcp://127.0.0.1:{devnet.free_port()}", "cores": 2},
        "zk_mock": {"simulate_time": False}, **tables}), encoding="utf-8")
    loaded = plugins.load([ep.name for ep in plugins.installed()], strict=True)
    finished = _Finished()
    loaded.register(finished, "finished-recorder")
    context = NodeContext(config=config_mod.load(home), home=home, identity=Identity.load(home.identity_dir),
                          hook=loaded.hook, task_kinds=frozenset(loaded.runners_by_kind()))
    return Node(context, loaded), finished


@pytest.fixture
def node_for(tmp_path: Path) -> Iterator[Callable[[dict[str, dict[str, object]]], tuple[Node, _Finished]]]:
    started: list[Node] = []

    def make(tables: dict[str, dict[str, object]]) -> tuple[Node, _Finished]:
        node, finished = _node(tmp_path / f"node{len(started)}", tables)
        node.start()
        started.append(node)
        return node, finished

    yield make
    for node in started:
        node.stop(drain_s=5.0)


def _wait(finished: _Finished, ids: list[str], timeout: float = 60.0) -> dict[str, TaskResult]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with finished.lock:
            if all(i in finished.results for i in ids):
                return dict(finished.results)
        time.sleep(0.05)
    raise AssertionError(f"tasks did not finish within {timeout:g} s")


def _echo(data: bytes) -> Task:
    from gaia_runner_wasm import workloads

    return Task.create(workloads.module_bytes("echo"), entry="echo", input=data, submitter=ABSENT)


def test_node_keeps_serving_through_hostile_containers(node_for: Callable[..., tuple[Node, _Finished]],
                                                       busybox: str) -> None:
    pytest.importorskip("gaia_runner_wasm")
    node, finished = node_for({"runner_docker": {"allow": [busybox]}})
    hostile = [attrs.evolve(oci(busybox, entry), submitter=ABSENT, limits=limits) for entry, limits in [
        ("yes", Limits(max_output_bytes=4096, timeout_s=10.0)),
        ("dd if=/dev/zero of=/dev/null bs=256M count=1", Limits(memory_bytes=16 << 20, timeout_s=10.0)),
        ("sleep 3600", Limits(timeout_s=1.0)),
    ]]
    good = attrs.evolve(oci(busybox, "cat /gaia/input", b"still serving"), submitter=ABSENT)
    tasks = [*hostile, good, _echo(b"wasm too")]
    for task in tasks:
        node.admit(task, origin=ABSENT)
    results = _wait(finished, [t.id for t in tasks])
    assert [results[t.id].status for t in tasks] == [Status.OUTPUT_TOO_LARGE, Status.OUT_OF_MEMORY, Status.TIMEOUT,
                                                   Status.OK, Status.OK]
    assert results[good.id].output == b"still serving" and results[tasks[-1].id].output == b"wasm too"


def test_node_without_an_engine_runs_wasm_and_refuses_oci(node_for: Callable[..., tuple[Node, _Finished]]) -> None:
    pytest.importorskip("gaia_runner_wasm")
    busybox = SOME_IMAGE
    node, finished = node_for({"runner_docker": {"allow": [busybox], "base_url": NO_ENGINE}})
    echo = _echo(b"no docker needed")
    node.admit(echo, origin=ABSENT)
    assert _wait(finished, [echo.id])[echo.id].output == b"no docker needed"
    with pytest.raises(RejectedError) as info:
        node.admit(attrs.evolve(oci(busybox, "true"), submitter=ABSENT), origin=ABSENT)
    assert "gaia-runner-docker is unavailable" in str(info.value)
