"""The plugin as the kernel sees it: entry point, runner spec, admission hook, config table."""

from __future__ import annotations

import attrs
import pytest

from gaia_core import admission, plugins
from gaia_core.config import Config
from gaia_core.errors import ConfigError, RejectedError
from gaia_core.model import Task
from gaia_core.roles import NodeContext, Runner
from gaia_runner_wasm import WasmRunner, workloads


@pytest.fixture
def loaded():
    return plugins.load(["gaia-runner-wasm"], strict=True)


@pytest.fixture
def context(node_context: NodeContext, loaded) -> NodeContext:
    return attrs.evolve(node_context, hook=loaded.hook)


def test_registers_the_wasm_runner(loaded, node_context) -> None:
    spec = loaded.runners_by_kind()["wasm"]
    assert spec.name == "wasm"
    runner = spec.factory(node_context)
    try:
        assert isinstance(runner, Runner) and isinstance(runner, WasmRunner)
    finally:
        runner.close()
    assert loaded.infos["gaia-runner-wasm"].status == "active"


def test_admission_accepts_a_valid_module(context) -> None:
    admission.check(Task.create(workloads.module_bytes("matmul"), entry="matmul"), context)


@pytest.mark.parametrize("module", [b"\0asm\x01\0\0\0\xff", b"(module)"])
def test_admission_refuses_bad_modules(context, module: bytes) -> None:
    with pytest.raises(RejectedError) as info:
        admission.check(Task.create(module), context)
    assert info.value.reason == "bad_module"


def test_admission_needs_bytes_for_an_unknown_module(context) -> None:
    task = Task.create(workloads.module_bytes("echo"), entry="echo")
    with pytest.raises(RejectedError) as info:
        admission.check(task.without_module(), context)
    assert info.value.reason == "bad_module" and "not cached" in str(info.value)
    runner = WasmRunner(context)
    try:
        runner.run(task)
    finally:
        runner.close()
    admission.check(task.without_module(), context)  # now compiled on this node


def test_admission_knows_modules_a_runner_holds_in_memory_only(context) -> None:
    """``disk_cache = false``: the open runner holds the module in memory, so a task may omit its bytes."""
    context = attrs.evolve(context, config=Config(extra={"runner_wasm": {"disk_cache": False}}))
    task = Task.create(workloads.module_bytes("echo"), entry="echo")
    runner = WasmRunner(context)
    try:
        assert runner.run(task).ok
        admission.check(task.without_module(), context)
    finally:
        runner.close()
    with pytest.raises(RejectedError) as info:  # closed: nothing holds it any more, and nothing is on disk
        admission.check(task.without_module(), context)
    assert info.value.reason == "bad_module"


def test_other_kinds_are_not_its_business(context) -> None:
    from gaia_runner_wasm.plugin import gaia_validate_task

    assert gaia_validate_task(Task(module_id="ab" * 32, kind="python"), None, context) is None


@pytest.mark.parametrize("table, key", [({"cache_modules": 0}, "cache_modules"), ({"bogus": 1}, "bogus"),
                                        ({"tick_ms": "fast"}, "tick_ms"),
                                        ({"env": "HOME"}, "env")])  # a bare string, once split into letters
def test_bad_config_table_is_a_config_error(node_context, table, key) -> None:
    context = attrs.evolve(node_context, config=Config(extra={"runner_wasm": table}))
    with pytest.raises(ConfigError) as info:
        WasmRunner(context)
    assert key in str(info.value)
