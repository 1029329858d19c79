"""The gaia_tensor host API through the WASM runner: a module built from C (tensor_test.c) calls each
function; bad arguments trap the task cleanly; calls are charged to fuel; imports are checked."""

from __future__ import annotations

import struct
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import wasmtime
from hypothesis import given, settings, strategies as st

import gaia_native
from gaia_core.config import Config, Home
from gaia_core.model import Limits, Status, Task
from gaia_core.roles import NodeContext
from gaia_runner_wasm import WasmRunner, tensor_host

MODULE = resources.files("gaia_runner_wasm").joinpath("modules", "tensor_test.wasm").read_bytes()
INDEX = {name: i for i, (name, _params) in enumerate(gaia_native.tensor_signatures())}
LIMITS = Limits(fuel=10**9, timeout_s=10.0, memory_bytes=16 << 20)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    runner = WasmRunner(NodeContext(config=Config(), home=Home(Path(tmp_path_factory.mktemp("home")))))
    yield runner
    runner.close()


def task(op: str, args: list[int], blob: np.ndarray, mask: int, limits: Limits = LIMITS, alpha: float = 0.0) -> Task:
    """A tensor_test.wasm task calling ``op``; arguments whose bit is set in ``mask`` are blob offsets."""
    words = [struct.unpack("<i", struct.pack("<f", alpha))[0], *args] if op == "axpy" else list(args)
    words = (words + [0] * 13)[:13]
    header = struct.pack("<2I13i", INDEX[op], mask, *words)
    return Task.create(MODULE, entry="call", input=header.ljust(64, b"\0") + blob.tobytes(), limits=limits)


def direct(op: str, args: list[int], blob: np.ndarray, alpha: float = 0.0) -> bytes:
    """The same call made by gaia-native on a copy of the blob, the blob offsets now its own pointers."""
    memory = blob.copy()
    gaia_native.tensor_call(op, memory, args, alpha=alpha)
    return memory.tobytes()


def cases() -> list[tuple[str, list[int], int, np.ndarray]]:
    """(op, args with blob byte offsets, pointer mask, blob) for each function of the header."""
    rng = np.random.default_rng(5)
    blob = rng.standard_normal(4096).astype(np.float32)
    blob[3000:3100] = np.arange(100, dtype=np.int32).view(np.float32)  # argmax indices for maxpool2d_backward
    b = 4  # bytes per element
    return [
        ("gemm", [0, 200 * b, 400 * b, 6, 7, 9, 0], 0b111, blob),
        ("gemm", [0, 200 * b, 400 * b, 6, 7, 9, 7], 0b111, blob),
        ("conv2d", [0, 600 * b, 700 * b, 1000 * b, 2, 3, 6, 5, 4, 3, 2, 1, 1], 0b1111, blob),
        ("conv2d", [0, 600 * b, 0, 1000 * b, 1, 3, 6, 5, 4, 3, 3, 2, 0], 0b1011, blob),
        ("im2col", [0, 1000 * b, 2, 5, 5, 3, 3, 1, 1], 0b11, blob),
        ("col2im", [1000 * b, 0, 2, 5, 5, 3, 3, 1, 1], 0b11, blob),
        ("maxpool2d", [0, 500 * b, 600 * b, 2, 2, 6, 6, 2, 2], 0b111, blob),
        ("maxpool2d_backward", [0, 3000 * b, 500 * b, 1, 1, 10, 10, 1, 1], 0b111, blob),
        ("avgpool2d", [0, 500 * b, 2, 2, 6, 6, 3, 1], 0b11, blob),
        ("add", [0, 100 * b, 300 * b, 100], 0b111, blob),
        ("mul", [0, 100 * b, 0, 100], 0b111, blob),
        ("axpy", [0, 100 * b, 100], 0b110, blob),
        ("bias_add", [0, 100 * b, 10, 10], 0b11, blob),
        ("relu", [0, 0, 300], 0b11, blob),
        ("relu_backward", [0, 100 * b, 300 * b, 100], 0b111, blob),
        ("sigmoid", [0, 300 * b, 200], 0b11, blob),
        ("tanh", [0, 300 * b, 200], 0b11, blob),
        ("softmax", [0, 300 * b, 10, 20], 0b11, blob),
        ("sum_rows", [0, 300 * b, 10, 20], 0b11, blob),
        ("argmax_rows", [0, 300 * b, 10, 20], 0b11, blob),
    ]


def test_every_function_is_exercised() -> None:
    assert {op for op, *_ in cases()} == set(INDEX)


@pytest.mark.parametrize(("op", "args", "mask", "blob"), cases(), ids=[f"{c[0]}-{i}" for i, c in enumerate(cases())])
def test_c_module_gets_the_native_bits(runner: WasmRunner, op: str, args: list[int], mask: int,
                                       blob: np.ndarray) -> None:
    alpha = 0.75 if op == "axpy" else 0.0
    result = runner.run(task(op, args, blob, mask, alpha=alpha))
    assert result.status is Status.OK, result.message
    want = direct(op, args, blob, alpha)
    assert result.output == want
    assert result.output != blob.tobytes()  # the call wrote something


# Arguments as a hostile task passes them: raw pointers anywhere (mask 0), sizes of every sign and magnitude.
WILD = st.one_of(st.integers(-2, 70_000), st.sampled_from([-(2**31), 2**31 - 1, 1 << 20, 65532, 65536, 16 << 20]),
                 st.integers(-(2**31), 2**31 - 1))


@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(sorted(INDEX)), args=st.lists(WILD, min_size=13, max_size=13))
def test_random_arguments_trap_the_task_cleanly(runner: WasmRunner, op: str, args: list[int]) -> None:
    result = runner.run(task(op, args, np.zeros(64, np.float32), 0, Limits(fuel=10**8, memory_bytes=4 << 20)))
    # raw pointers may scribble over the module's own memory: that may end it any way a task can end,
    # but always as a task outcome (never a runner error), and a refused call names itself
    assert result.status in (Status.OK, Status.TRAP, Status.OUT_OF_FUEL), result.message
    if result.status is Status.TRAP and "gaia_tensor" in result.message:
        assert result.message.startswith(f"wasm trap: gaia_tensor.{op}: ")


def test_bad_arguments_trap_with_the_reason(runner: WasmRunner) -> None:
    blob = np.zeros(64, np.float32)
    result = runner.run(task("gemm", [0, 0, 1 << 30, 4, 4, 4, 0], blob, 0b11))
    assert result.status is Status.TRAP
    assert "gaia_tensor.gemm: c: 16 elements at" in result.message and "outside the guest memory" in result.message


def test_calls_are_charged_to_fuel_by_their_work(runner: WasmRunner) -> None:
    blob = np.ones(3 * 64 * 64, np.float32)

    def used(n: int, limits: Limits = LIMITS) -> tuple[Status, int]:
        result = runner.run(task("gemm", [0, n * n * 4, 2 * n * n * 4, n, n, n, 0], blob, 0b111, limits))
        return result.status, result.fuel_used

    (s16, f16), (s64, f64) = used(16), used(64)
    assert s16 is s64 is Status.OK
    # the host call's share: 64^3 - 16^3 multiply-adds, and 3*(64^2-16^2) elements
    assert f64 - f16 == 64**3 - 16**3 + 3 * (64**2 - 16**2)
    # short by less than the instructions after the call: the host call itself does not fit
    status, fuel = used(64, Limits(fuel=f64 - 100))
    assert (status, fuel) == (Status.OUT_OF_FUEL, f64 - 100)


def test_worker_threads_charge_their_own_tasks(runner: WasmRunner) -> None:
    # each worker thread's calls go to its own task's fuel, with the GIL released in the kernel
    blob = np.random.default_rng(3).standard_normal(3 * 128 * 128).astype(np.float32)
    tasks = [task("gemm", [0, 128 * 128 * 4, 2 * 128 * 128 * 4, 128, 128, 128, 0], blob, 0b111)
             for _ in range(6)] + [task("relu", [0, 0, 16], blob, 0b11) for _ in range(6)]
    results = runner.run_many(tasks)
    assert all(r.status is Status.OK for r in results)
    assert len({(r.output, r.fuel_used) for r in results[:6]}) == 1
    assert len({(r.output, r.fuel_used) for r in results[6:]}) == 1
    assert results[0].fuel_used - results[6].fuel_used > 128**3


def test_a_refused_call_is_reported_to_its_own_task_only(runner: WasmRunner) -> None:
    # wasmtime-py passes a host function's exception through one process-wide variable: with tasks
    # trapping on several worker threads at once, one task's gaia_tensor error reached another task
    # (and the first got a bare "error while executing"), a few times in a thousand
    unreachable = wasmtime.wat2wasm(
        '(module (memory (export "memory") 1) (func (export "gaia_alloc") (param i32) (result i32) i32.const 16)'
        ' (func (export "run") (param i32 i32) (result i64) unreachable))')
    blob = np.zeros(64, np.float32)
    refused = [task("gemm", [0, 0, (1 << 30) + 4 * i, 4, 4, 4, 0], blob, 0b11) for i in range(300)]
    trapping = [Task.create(unreachable, entry="run", input=i.to_bytes(2, "little"), limits=LIMITS)
                for i in range(300)]
    tasks = [t for pair in zip(refused, trapping, strict=True) for t in pair]
    for _ in range(2):
        results = runner.run_many(tasks)
        for i, result in enumerate(results[0::2]):
            assert result.message.startswith(f"wasm trap: gaia_tensor.gemm: c: 16 elements at {(1 << 30) + 4 * i} ")
        for result in results[1::2]:
            assert result.status is Status.TRAP and "gaia_tensor" not in result.message, result.message


def test_unmetered_runner_runs_tensor_calls(tmp_path: Path) -> None:
    from gaia_runner_wasm import Metering

    runner = WasmRunner(NodeContext(config=Config(), home=Home(tmp_path)), metering=Metering(fuel=False, epochs=False))
    try:
        op, args, mask, blob = cases()[0]
        result = runner.run(task(op, args, blob, mask))
        assert result.status is Status.OK and result.output == direct(op, args, blob)
    finally:
        runner.close()


GAIA = ('(memory (export "memory") 1) (func (export "gaia_alloc") (param i32) (result i32) (i32.const 1024))'
        ' (func (export "run") (param i32 i32) (result i64) (i64.const 0))')


@pytest.mark.parametrize(("imports", "message"), [
    ('(import "gaia_tensor" "fma" (func (param i32)))', "gaia_tensor has no function 'fma'"),
    ('(import "gaia_tensor" "relu" (func (param i32 i32)))',
     "gaia_tensor::relu is imported as (i32, i32) -> (); gaia_tensor.h declares (i32, i32, i32) -> ()"),
    ('(import "gaia_tensor" "axpy" (func (param i32 i32 i32 i32)))', "declares (f32, i32, i32, i32) -> ()"),
    ('(import "gaia_tensor" "relu" (func (param i32 i32 i32) (result i32)))',
     "is imported as (i32, i32, i32) -> (i32)"),
    ('(import "env" "relu" (func (param i32 i32 i32)))', "unknown import env::relu"),
])
def test_imports_are_checked_at_admission(runner: WasmRunner, imports: str, message: str) -> None:
    module = bytes(wasmtime.wat2wasm(f"(module {imports} {GAIA})"))
    result = runner.run(Task.create(module, entry="run", limits=LIMITS))
    assert result.status is Status.INVALID
    assert message in result.message


def test_calls_after_the_memory_grows_see_all_of_it(runner: WasmRunner) -> None:
    # relu on page 0, then the memory grows and relu runs in place on the new page (-1.0 -> 0.0)
    module = bytes(wasmtime.wat2wasm(
        '(module (import "gaia_tensor" "relu" (func $relu (param i32 i32 i32)))'
        ' (memory (export "memory") 1) (func (export "gaia_alloc") (param i32) (result i32) (i32.const 1024))'
        ' (func (export "run") (param i32 i32) (result i64)'
        '  (call $relu (i32.const 0) (i32.const 64) (i32.const 16))'
        '  (drop (memory.grow (i32.const 1)))'
        '  (f32.store (i32.const 65536) (f32.const -1))'
        '  (call $relu (i32.const 65536) (i32.const 65536) (i32.const 1))'
        '  (i64.or (i64.shl (i64.const 65536) (i64.const 32)) (i64.const 4))))'))
    result = runner.run(Task.create(module, entry="run", limits=LIMITS))
    assert result.status is Status.OK, result.message
    assert result.output == struct.pack("<f", 0.0)


def test_a_module_without_memory_export_traps(runner: WasmRunner) -> None:
    # imports relu but exports its memory under another name: the call cannot find the memory
    module = bytes(wasmtime.wat2wasm(
        '(module (import "gaia_tensor" "relu" (func $relu (param i32 i32 i32)))'
        ' (memory (export "mem") 1) (func (export "_start") (call $relu (i32.const 0) (i32.const 0) (i32.const 1))))'))
    result = runner.run(Task.create(module, entry="_start", limits=LIMITS))
    assert result.status is Status.TRAP
    assert "exports no memory named 'memory'" in result.message


def test_signatures_match_the_header() -> None:
    header = resources.files("gaia_runner_wasm").joinpath("modules", "src", "gaia_tensor.h").read_text()
    for name in tensor_host.SIGNATURES:
        assert f'GT_IMPORT("{name}")\nvoid gt_{name}(' in header
    assert header.count("GT_IMPORT(\"") == len(tensor_host.SIGNATURES)
