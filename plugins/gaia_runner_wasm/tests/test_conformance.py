"""The kernel's runner conformance suite, run against WasmRunner."""

from __future__ import annotations

import pytest
from hostile import gaia

from gaia_core.model import Task
from gaia_core.testing.conformance.runner import RunnerCases, RunnerTests
from gaia_runner_wasm import WasmRunner, workloads

LOOP = gaia('(func (export "run") (param i32 i32) (result i64) (loop (br 0)) (i64.const 0))')
TRAP = gaia('(func (export "run") (param i32 i32) (result i64) unreachable)')


class TestWasmRunner(RunnerTests):
    @pytest.fixture
    def make_runner(self):
        return WasmRunner

    @pytest.fixture
    def runner_cases(self) -> RunnerCases:
        echo = workloads.module_bytes("echo")
        return RunnerCases(
            ok=Task.create(echo, entry="echo", input=b"conformance"),
            ok_output=b"conformance",
            invalid=Task.create(echo, entry="no_such_entry"),
            trap=Task.create(TRAP, entry="run"),
            forever=Task.create(LOOP, entry="run"),
        )
