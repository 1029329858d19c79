"""Hostile modules: each is contained with the right status, and the runner keeps serving."""

from __future__ import annotations

import gc

import psutil
import pytest
from hostile import CORPUS, FD_WRITE, Hostile, wasi, wat

from gaia_core.model import Limits, Status, Task
from gaia_runner_wasm import workloads

ECHO = Task.create(workloads.module_bytes("echo"), entry="echo", input=b"still serving")


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_contained(runner, case: Hostile) -> None:
    result = runner.run(case.task())
    assert result.status is case.status, result.message
    assert case.message in result.message
    assert result.output == b"" and result.output_id == ""
    assert runner.run(ECHO).output == b"still serving"


def test_fuel_used_is_reported_within_budget(runner) -> None:
    result = runner.run(CORPUS[0].task())
    assert result.status is Status.OUT_OF_FUEL
    assert 0 < result.fuel_used <= CORPUS[0].limits.fuel


def test_module_refusing_its_input_is_invalid(runner) -> None:
    task = Task.create(workloads.module_bytes("matmul"), entry="matmul", input=b"\x01\x00")
    result = runner.run(task)
    assert result.status is Status.INVALID
    assert "module refused its input: matmul: input shorter" in result.message


def test_input_that_cannot_be_allocated_is_out_of_memory(runner) -> None:
    task = Task.create(workloads.module_bytes("echo"), entry="echo", input=b"x" * (200 << 10),
                       limits=Limits(memory_bytes=128 << 10))
    result = runner.run(task)
    assert result.status is Status.OUT_OF_MEMORY
    assert "gaia_alloc" in result.message


def test_module_over_the_size_limit_is_invalid(make_runner) -> None:
    from gaia_core.config import AdmissionSection, Config

    runner = make_runner(Config(admission=AdmissionSection(max_module_bytes=100)))
    result = runner.run(Task.create(workloads.module_bytes("mlp"), entry="infer"))
    assert result.status is Status.INVALID
    assert "at most 100" in result.message


def test_memory_returns_to_baseline(runner) -> None:
    """Bounded: 15 rounds of the whole corpus; the process may not keep what the tasks used."""
    tasks = [case.task() for case in CORPUS if case.status is not Status.TIMEOUT]
    for task in tasks:  # warm up: compile and cache every module once
        runner.run(task)
    gc.collect()
    before = psutil.Process().memory_info().rss
    for _ in range(15):
        for task in tasks:
            runner.run(task)
    gc.collect()
    grown = psutil.Process().memory_info().rss - before
    assert grown < 32 << 20, f"RSS grew by {grown >> 20} MiB over 15 rounds of hostile tasks"
    assert runner.run(ECHO).status is Status.OK


POLL_ONEOFF = '(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))'
#: A WASI command that asks poll_oneoff for a 3 s sleep and writes the errno it got as one byte.
SLEEPER = wasi(f"{POLL_ONEOFF} {FD_WRITE}",
               '(func (export "_start")'
               ' (i64.store (i32.const 8) (i64.const 0))'  # subscription userdata
               ' (i32.store8 (i32.const 16) (i32.const 0))'  # tag: clock
               ' (i32.store (i32.const 24) (i32.const 1))'  # clock id: monotonic
               ' (i64.store (i32.const 32) (i64.const 3000000000))'  # timeout: 3 s
               ' (i32.store8 (i32.const 200) (call $poll (i32.const 8) (i32.const 100) (i32.const 1) (i32.const 300)))'
               ' (i32.store (i32.const 400) (i32.const 200)) (i32.store (i32.const 404) (i32.const 1))'
               ' (drop (call $fd_write (i32.const 1) (i32.const 400) (i32.const 1) (i32.const 408))))')


def test_sleeping_is_refused_even_with_the_clock_granted(make_runner) -> None:
    from gaia_core.config import Config

    runner = make_runner(Config(offer=Limits(capabilities=frozenset({"clock"}))))
    task = Task.create(SLEEPER, entry="_start", limits=Limits(timeout_s=0.5, capabilities=frozenset({"clock"})))
    result = runner.run(task)
    assert result.status is Status.OK and result.output == bytes([76]) and result.wall_s < 1.0


def test_a_closed_runner_refuses_to_run(runner) -> None:
    task = Task.create(wat('(module (func (export "_start")))'), entry="_start")
    runner.close()
    result = runner.run(task)
    assert result.status is Status.ERROR and "closed" in result.message


def test_fuel_is_reported_when_a_run_fails_after_using_it(runner) -> None:
    huge = next(h for h in CORPUS if h.status is Status.OUTPUT_TOO_LARGE)
    result = runner.run(huge.task())
    assert result.status is Status.OUTPUT_TOO_LARGE and result.fuel_used > 0
