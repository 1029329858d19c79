"""Conformance suite for the runner role (:class:`gaia_core.roles.Runner`).

Subclass :class:`RunnerTests` in your plugin's tests and provide two fixtures: ``make_runner``
(the callable your :class:`~gaia_core.roles.RunnerSpec` registers; every suite asks for
``make_<role>``, the factory of its spec) and ``runner_cases`` (a :class:`RunnerCases` of tasks in
your runner's kind)::

    from gaia_core.testing.conformance.runner import RunnerCases, RunnerTests

    class TestMyRunner(RunnerTests):
        @pytest.fixture
        def make_runner(self):
            return MyRunner

        @pytest.fixture
        def runner_cases(self):
            return RunnerCases(ok=..., ok_output=b"...", invalid=..., trap=..., forever=...)

The checks: a good task ends ``ok`` with its output, the output's content id and the task's id;
the same task gives the same output bytes every time; a malformed task ends ``invalid``, a
failing one ``trap``; the fuel budget ends a task that never stops (``out_of_fuel``, fuel used
within the budget) and so does the wall-clock timeout (``timeout``); output over
``max_output_bytes`` ends ``output_too_large``; no failure raises, and the runner keeps serving
after each; ``run`` is thread-safe; results carry the node's id; ``close`` is idempotent.

A runner that cannot meter fuel (e.g. one running containers) says so with a class attribute
``supports_fuel = False``; the fuel checks are then skipped, visibly, with that reason (the
timeout still ends every endless task). Without the attribute a runner meters fuel.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from attrs import frozen

from gaia_core.hashing import content_id
from gaia_core.model import Limits, Status, Task, TaskResult
from gaia_core.roles import NodeContext, Runner

RunnerFactory = Callable[[NodeContext], Runner]

#: Fuel given to ``forever`` when the suite checks the fuel budget.
SMALL_FUEL = 100_000
#: Wall-clock timeout given to ``forever`` when the suite checks the timeout.
SHORT_TIMEOUT_S = 0.3
#: Threads that run the good task at once in the thread-safety check.
THREADS = 4


@frozen
class RunnerCases:
    """Tasks, in the runner's own kind, that exercise its contract."""

    #: completes; its output is ``ok_output`` (at least 2 bytes)
    ok: Task
    ok_output: bytes
    #: cannot run: a malformed module or a missing entry
    invalid: Task
    #: runs and fails (e.g. a WebAssembly trap)
    trap: Task
    #: never ends on its own (an infinite loop)
    forever: Task


def skip_without_fuel(runner: Runner) -> None:
    """Skip the calling check, saying why, for a runner that declares ``supports_fuel = False``."""
    if getattr(runner, "supports_fuel", True) is False:
        pytest.skip(f"{type(runner).__name__}.supports_fuel is False: it does not meter fuel")


def with_limits(task: Task, **limits: Any) -> Task:
    """``task`` with some of its limits replaced."""
    return attrs.evolve(task, limits=attrs.evolve(task.limits, **limits))


class RunnerTests:
    """The contract every runner keeps. Provide ``make_runner`` and ``runner_cases``."""

    @pytest.fixture
    def make_runner(self) -> RunnerFactory:
        """Override: return the callable that builds your runner from a NodeContext."""
        raise NotImplementedError("subclass RunnerTests and provide a `make_runner` fixture")

    @pytest.fixture
    def runner_cases(self) -> RunnerCases:
        """Override: return the tasks the suite runs."""
        raise NotImplementedError("subclass RunnerTests and provide a `runner_cases` fixture")

    @pytest.fixture
    def runner(self, make_runner: RunnerFactory, node_context: NodeContext) -> Iterator[Runner]:
        runner = make_runner(node_context)
        yield runner
        runner.close()

    # ------------------------------------------------------------------ checks

    def test_is_a_runner(self, runner: Runner) -> None:
        assert isinstance(runner, Runner), "provider does not satisfy gaia_core.roles.Runner"

    def test_ok_task(self, runner: Runner, runner_cases: RunnerCases) -> None:
        task = runner_cases.ok
        result = runner.run(task)
        assert isinstance(result, TaskResult)
        assert result.status is Status.OK, f"good task ended {result.status.value}: {result.message}"
        assert result.task_id == task.id, "result.task_id must be the task's id"
        assert result.output == runner_cases.ok_output, "good task returned the wrong output"
        assert result.output_id == content_id(result.output), "output_id must be the output's content id"
        assert result.wall_s >= 0 and result.cpu_s >= 0

    def test_same_task_same_output(self, runner: Runner, runner_cases: RunnerCases) -> None:
        first, second = runner.run(runner_cases.ok), runner.run(runner_cases.ok)
        assert first.status is Status.OK and second.status is Status.OK
        assert first.output == second.output and first.output_id == second.output_id, "not deterministic"

    def test_invalid_task(self, runner: Runner, runner_cases: RunnerCases) -> None:
        result = runner.run(runner_cases.invalid)
        assert result.status is Status.INVALID, f"malformed task ended {result.status.value}"
        assert result.message, "a failed result must say why"
        assert result.output == b"" and result.output_id == "", "only an ok result carries output"

    def test_trap(self, runner: Runner, runner_cases: RunnerCases) -> None:
        result = runner.run(runner_cases.trap)
        assert result.status is Status.TRAP, f"failing task ended {result.status.value}"
        assert result.message and result.output == b""

    def test_fuel_budget(self, runner: Runner, runner_cases: RunnerCases) -> None:
        skip_without_fuel(runner)
        task = with_limits(runner_cases.forever, fuel=SMALL_FUEL, timeout_s=30.0)
        result = runner.run(task)
        assert result.status is Status.OUT_OF_FUEL, f"endless task with {SMALL_FUEL} fuel ended {result.status.value}"
        assert 0 < result.fuel_used <= SMALL_FUEL, f"fuel_used={result.fuel_used} outside (0, {SMALL_FUEL}]"

    def test_timeout(self, runner: Runner, runner_cases: RunnerCases) -> None:
        task = with_limits(runner_cases.forever, fuel=Limits().fuel * 100, timeout_s=SHORT_TIMEOUT_S)
        result = runner.run(task)
        assert result.status is Status.TIMEOUT, f"endless task with a timeout ended {result.status.value}"

    def test_output_limit(self, runner: Runner, runner_cases: RunnerCases) -> None:
        size = len(runner_cases.ok_output)
        assert size > 1, "runner_cases.ok_output must be at least 2 bytes"
        result = runner.run(with_limits(runner_cases.ok, max_output_bytes=size - 1))
        assert result.status is Status.OUTPUT_TOO_LARGE, f"oversized output ended {result.status.value}"
        assert result.output == b""

    def test_keeps_serving_after_failures(self, runner: Runner, runner_cases: RunnerCases) -> None:
        endless = with_limits(runner_cases.forever, fuel=SMALL_FUEL, timeout_s=SHORT_TIMEOUT_S)
        for task in (runner_cases.invalid, runner_cases.trap, endless):
            assert runner.run(task).status is not Status.OK
            again = runner.run(runner_cases.ok)
            assert again.status is Status.OK and again.output == runner_cases.ok_output

    def test_thread_safe(self, runner: Runner, runner_cases: RunnerCases) -> None:
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(runner.run, [runner_cases.ok] * (2 * THREADS)))
        assert all(r.status is Status.OK and r.output == runner_cases.ok_output for r in results)

    def test_node_id(self, runner: Runner, runner_cases: RunnerCases, node_context: NodeContext) -> None:
        assert node_context.identity is not None
        assert runner.run(runner_cases.ok).node_id == node_context.identity.node_id

    def test_close_is_idempotent(self, make_runner: RunnerFactory, node_context: NodeContext) -> None:
        runner = make_runner(node_context)
        runner.close()
        runner.close()
