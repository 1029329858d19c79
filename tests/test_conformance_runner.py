"""The runner conformance suite passes a small correct runner and fails deliberately broken ones."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import attrs
import pytest

from gaia_core.hashing import content_id
from gaia_core.model import Status, Task, TaskResult
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.runner import RunnerCases, RunnerTests

#: Fuel one step of the toy machine's loop costs.
STEP = 1_000


class ToyRunner:
    """A correct runner for kind ``toy``: module ECHO echoes, LOOP spins, TRAP traps, else invalid."""

    def __init__(self, context: NodeContext) -> None:
        self.node_id = context.identity.node_id if context.identity else ""

    def result(self, task: Task, status: Status, output: bytes = b"", message: str = "", fuel: int = 0) -> TaskResult:
        ok = status is Status.OK
        return TaskResult(task_id=task.id, status=status, node_id=self.node_id, output=output if ok else b"",
                          output_id=content_id(output) if ok else "", message=message, fuel_used=fuel)

    def run(self, task: Task) -> TaskResult:
        limits = task.limits
        if task.module == b"ECHO":
            if len(task.input) > limits.max_output_bytes:
                return self.result(task, Status.OUTPUT_TOO_LARGE, message="output too large", fuel=1)
            return self.result(task, Status.OK, task.input, fuel=1)
        if task.module == b"TRAP":
            return self.result(task, Status.TRAP, message="trap", fuel=1)
        if task.module == b"LOOP":
            return self.spin(task)
        return self.result(task, Status.INVALID, message="unknown toy module")

    def spin(self, task: Task) -> TaskResult:
        deadline = time.monotonic() + task.limits.timeout_s
        for used in itertools.count(STEP, STEP):
            if used > task.limits.fuel:
                return self.result(task, Status.OUT_OF_FUEL, message="out of fuel", fuel=task.limits.fuel)
            if time.monotonic() > deadline:
                return self.result(task, Status.TIMEOUT, message="timeout", fuel=used)
        raise AssertionError("unreachable")

    def close(self) -> None:
        pass


def toy(module: bytes, **fields: object) -> Task:
    return Task.create(module, kind="toy", **fields)


CASES = RunnerCases(ok=toy(b"ECHO", input=b"toy output"), ok_output=b"toy output", invalid=toy(b"????"),
                    trap=toy(b"TRAP"), forever=toy(b"LOOP"))


class TestToyRunner(RunnerTests):
    @pytest.fixture
    def make_runner(self) -> Callable[[NodeContext], ToyRunner]:
        return ToyRunner

    @pytest.fixture
    def runner_cases(self) -> RunnerCases:
        return CASES


# --------------------------------------------------------------------------- broken runners


class WrongOutputId(ToyRunner):
    def run(self, task: Task) -> TaskResult:
        return attrs.evolve(super().run(task), output_id="0" * 64)


class Nondeterministic(ToyRunner):
    calls = itertools.count()

    def run(self, task: Task) -> TaskResult:
        result = super().run(task)
        if not result.ok:
            return result
        output = result.output + str(next(self.calls)).encode()
        return attrs.evolve(result, output=output, output_id=content_id(output))


class InvalidAsTrap(ToyRunner):
    def run(self, task: Task) -> TaskResult:
        result = super().run(task)
        return attrs.evolve(result, status=Status.TRAP) if result.status is Status.INVALID else result


class IgnoresFuel(ToyRunner):
    def run(self, task: Task) -> TaskResult:  # spins until a (shortened, to keep the test quick) timeout
        limits = attrs.evolve(task.limits, fuel=10**18, timeout_s=min(task.limits.timeout_s, 0.3))
        return super().run(attrs.evolve(task, limits=limits))


class IgnoresTimeout(ToyRunner):
    def run(self, task: Task) -> TaskResult:
        if task.module == b"LOOP" and task.limits.fuel >= 10**12:
            return self.result(task, Status.OUT_OF_FUEL, message="gave up", fuel=1)
        return super().run(task)


class IgnoresOutputLimit(ToyRunner):
    def run(self, task: Task) -> TaskResult:
        return super().run(attrs.evolve(task, limits=attrs.evolve(task.limits, max_output_bytes=1 << 30)))


class OutputOnFailure(ToyRunner):
    def result(self, task: Task, status: Status, output: bytes = b"", message: str = "", fuel: int = 0) -> TaskResult:
        result = super().result(task, status, output, message, fuel)
        return result if result.ok else attrs.evolve(result, output=b"partial")


class Anonymous(ToyRunner):
    def __init__(self, context: NodeContext) -> None:
        super().__init__(context)
        self.node_id = ""


class RaisesOnBadModule(ToyRunner):
    def run(self, task: Task) -> TaskResult:
        if task.module not in (b"ECHO", b"TRAP", b"LOOP"):
            raise ValueError("bad module")
        return super().run(task)


BROKEN = [
    (WrongOutputId, "test_ok_task"),
    (Nondeterministic, "test_same_task_same_output"),
    (InvalidAsTrap, "test_invalid_task"),
    (IgnoresFuel, "test_fuel_budget"),
    (IgnoresTimeout, "test_timeout"),
    (IgnoresOutputLimit, "test_output_limit"),
    (OutputOnFailure, "test_trap"),
    (Anonymous, "test_node_id"),
]


def call(check: str, runner: ToyRunner, node_context: NodeContext) -> None:
    method = getattr(RunnerTests(), check)
    if check == "test_node_id":
        method(runner, CASES, node_context)
    else:
        method(runner, CASES)


@pytest.mark.parametrize("broken, check", BROKEN, ids=[b.__name__ for b, _ in BROKEN])
def test_suite_catches_broken_runner(node_context: NodeContext, broken: type[ToyRunner], check: str) -> None:
    call(check, ToyRunner(node_context), node_context)  # the check passes a correct runner...
    with pytest.raises(AssertionError):
        call(check, broken(node_context), node_context)  # ...and fails the broken one


def test_suite_catches_a_runner_that_raises(node_context: NodeContext) -> None:
    with pytest.raises(ValueError):
        RunnerTests().test_invalid_task(RaisesOnBadModule(node_context), CASES)


class Unmetered(ToyRunner):
    """Declares that it cannot meter fuel: endless tasks end only by their timeout."""

    supports_fuel = False

    def spin(self, task: Task) -> TaskResult:
        deadline = time.monotonic() + task.limits.timeout_s
        while time.monotonic() <= deadline:
            time.sleep(0.01)
        return self.result(task, Status.TIMEOUT, message="timeout")


class TestUnmeteredRunner(RunnerTests):
    """A runner without fuel passes the suite, its fuel check skipped with the reason."""

    @pytest.fixture
    def make_runner(self) -> Callable[[NodeContext], ToyRunner]:
        return Unmetered

    @pytest.fixture
    def runner_cases(self) -> RunnerCases:
        return CASES


def test_the_fuel_check_of_a_runner_without_fuel_is_skipped_with_its_reason(node_context: NodeContext) -> None:
    with pytest.raises(pytest.skip.Exception, match="Unmetered.supports_fuel is False: it does not meter fuel"):
        RunnerTests().test_fuel_budget(Unmetered(node_context), CASES)
    with pytest.raises(AssertionError):  # not declaring it is no way out
        RunnerTests().test_fuel_budget(IgnoresFuel(node_context), CASES)


def test_suite_refuses_a_non_runner() -> None:
    with pytest.raises(AssertionError):
        RunnerTests().test_is_a_runner(object())  # type: ignore[arg-type]
