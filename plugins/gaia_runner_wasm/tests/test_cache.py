"""Compiled modules are cached by content id, in memory and on disk; corrupt entries are rebuilt."""

from __future__ import annotations

from gaia_core.config import Config
from gaia_core.model import Status, Task
from gaia_runner_wasm import workloads

ECHO = workloads.module_bytes("echo")


def echo(text: bytes = b"hi") -> Task:
    return Task.create(ECHO, entry="echo", input=text)


def artifacts(runner) -> list:
    return sorted(runner.cache.directory.glob("*.cwasm"))


def test_module_compiles_once_per_node(runner, make_runner) -> None:
    for text in (b"a", b"b", b"c"):
        assert runner.run(echo(text)).status is Status.OK
    assert runner.cache.compiles == 1
    assert [p.name.split(".")[0] for p in artifacts(runner)] == [echo().module_id]
    fresh = make_runner()  # a restarted node: loads the artifact instead of compiling
    assert fresh.run(echo()).output == b"hi"
    assert fresh.cache.compiles == 0


def test_task_without_module_bytes_runs_from_cache(runner) -> None:
    missing = runner.run(echo().without_module())
    assert missing.status is Status.INVALID and "send the task with its module bytes" in missing.message
    runner.run(echo())
    assert runner.knows(echo().module_id)
    assert runner.run(echo(b"again").without_module()).output == b"again"


def test_corrupt_artifact_is_detected_and_rebuilt(runner, make_runner) -> None:
    runner.run(echo())
    (path,) = artifacts(runner)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    fresh = make_runner()
    assert fresh.run(echo()).output == b"hi"
    assert fresh.cache.compiles == 1  # the corrupt entry was dropped and the module compiled again
    assert artifacts(fresh) == [path] and path.read_bytes() != bytes(data)


def test_truncated_artifact_is_rebuilt(runner, make_runner) -> None:
    runner.run(echo())
    (path,) = artifacts(runner)
    path.write_bytes(b"GAIA")
    fresh = make_runner()
    assert fresh.run(echo()).status is Status.OK and fresh.cache.compiles == 1


def test_disk_cache_can_be_turned_off(make_runner) -> None:
    runner = make_runner(Config(extra={"runner_wasm": {"disk_cache": False}}))
    assert runner.run(echo()).status is Status.OK
    assert runner.cache.directory is None


def test_memory_cache_is_bounded(make_runner) -> None:
    runner = make_runner(Config(extra={"runner_wasm": {"cache_modules": 1}}))
    runner.run(echo())
    runner.run(Task.create(workloads.module_bytes("upper"), entry="_start"))
    assert len(runner.cache._memory) == 1
