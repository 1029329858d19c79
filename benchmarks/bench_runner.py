"""The WebAssembly runner against native code and bare wasmtime, measured in one run.

Prints ``<measure>: gaia=X baseline=Y ratio=Z`` lines:

* matmul and SGD kernels run as pure-WASM tasks (matmul_wasm.wasm, mlp.wasm) vs the same C
  (modules/src/kernels.c) compiled here with ``gcc -O3 -ffp-contract=off -shared`` and called through
  ctypes (target ratio <= 1.25); the shipped matmul.wasm (tensor host API) beside them;
* per-task overhead of a trivial task with its module cached (p50/p99, µs) vs bare wasmtime
  instantiating and calling the same module;
* the cost of fuel metering and of epoch interruption: the same kernel with each on and off, and
  of NaN canonicalization (the kernel calls alone, engines differing only in that setting), beside
  the cost of canonicalizing a declared f32 output after the run instead (docs/task-abi.md);
* 1 vs 2 worker threads on CPU-bound tasks (target ratio >= 1.8 on a machine with 2+ cores).

Kernel timings are the best of REPEATS runs (robust to other load on the machine); the scaling
figure needs otherwise idle cores. Needs gcc. Run: ``python benchmarks/bench_runner.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import ctypes
import os
import random
import statistics
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

import attrs
import numpy as np
import wasmtime
from measures import best_time, line

from gaia_core.config import Config, Home
from gaia_core.model import Status, Task
from gaia_core.roles import NodeContext
from gaia_runner_wasm import Metering, WasmRunner, workloads as w

MATMUL_N = 256
REPEATS = 15
OVERHEAD_TASKS = 2000
SCALING_TASKS = 8


def native_kernels(tmp: Path) -> ctypes.CDLL:
    source = resources.files("gaia_runner_wasm").joinpath("modules", "src", "kernels.c")
    library = tmp / "libkernels.so"
    subprocess.run(["gcc", "-O3", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(library), str(source)],
                   check=True)
    lib = ctypes.CDLL(str(library))
    u32, fp = ctypes.c_uint32, ctypes.POINTER(ctypes.c_float)
    lib.matmul.argtypes = [fp, fp, fp, u32, u32, u32]
    lib.sgd_train.argtypes = [fp, fp, ctypes.POINTER(u32), u32, u32, u32, u32, u32, u32, ctypes.c_float, u32,
                              fp, ctypes.POINTER(u32)]
    lib.sgd_train.restype = ctypes.c_float
    lib.sgd_workspace_floats.restype = u32
    return lib


def runner_for(home: Home, metering: Metering = Metering(), workers: int = 0) -> WasmRunner:
    config = Config(extra={"runner_wasm": {"workers": workers}} if workers else {})
    return WasmRunner(NodeContext(config=config, home=home), metering=metering)


def wasm_wall(runner: WasmRunner, task: Task) -> float:
    runner.run(task)  # compile and warm up
    times = []
    for _ in range(REPEATS):
        result = runner.run(task)
        assert result.status is Status.OK, result.message
        times.append(result.wall_s)
    return min(times)


def bench_kernels(lib: ctypes.CDLL, runner: WasmRunner) -> tuple[Task, Task]:
    n = MATMUL_N
    rng = random.Random(1)
    a = w.f32([rng.uniform(-1, 1) for _ in range(n * n)])
    b = w.f32([rng.uniform(-1, 1) for _ in range(n * n)])
    host_api = w.matmul_task(a, b, n, n, n)
    matmul = Task.create(pure_module("matmul"), entry="matmul", input=host_api.input, limits=host_api.limits)
    out = (ctypes.c_float * (n * n))()
    ca, cb = (ctypes.c_float * len(a)).from_buffer(a), (ctypes.c_float * len(b)).from_buffer(b)
    native = best_time(lambda: lib.matmul(ca, cb, out, n, n, n), REPEATS)
    wasm = wasm_wall(runner, matmul)
    assert w.decode_matrix(runner.run(matmul).output).tobytes() == bytes(out), "WASM and native results differ"
    line(f"matmul {n}x{n}x{n} f32 wasm vs native C (s)", wasm, native)
    line(f"matmul {n}x{n}x{n} f32 shipped task (tensor host API) vs native C (s)", wasm_wall(runner, host_api), native)

    data = w.load_digits()
    model = w.Mlp.init(64, 32, 10, seed=0)
    epochs, batch, lr, seed = 2, 16, 0.1, 1
    train = w.train_task(model, data.x, data.y, epochs=epochs, batch_size=batch, learning_rate=lr, seed=seed)
    ws = (ctypes.c_float * lib.sgd_workspace_floats(64, 32, 10))()
    perm = (ctypes.c_uint32 * len(data))()
    cx = (ctypes.c_float * len(data.x)).from_buffer(data.x)
    cy = (ctypes.c_uint32 * len(data.y)).from_buffer(data.y)

    def native_sgd() -> None:
        params = (ctypes.c_float * len(model.params))(*model.params)
        lib.sgd_train(params, cx, cy, len(data), 64, 32, 10, epochs, batch, lr, seed, ws, perm)

    line(f"sgd {epochs} epochs on 1797 digits wasm vs native C (s)", wasm_wall(runner, train),
         best_time(native_sgd, REPEATS))
    return matmul, train


def bench_overhead(runner: WasmRunner) -> None:
    echo_bytes = w.module_bytes("echo")
    task = Task.create(echo_bytes, entry="echo", input=b"x" * 64)
    runner.run(task)
    times = []
    for _ in range(OVERHEAD_TASKS):
        start = time.perf_counter()
        runner.run(task)
        times.append(time.perf_counter() - start)
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, echo_bytes)
    pre = wasmtime.Linker(engine).instantiate_pre(module)
    bare = []
    for _ in range(OVERHEAD_TASKS):
        start = time.perf_counter()
        store = wasmtime.Store(engine)
        exports = pre.instantiate(store).exports(store)
        ptr = exports["gaia_alloc"](store, 64)
        exports["memory"].write(store, b"x" * 64, ptr)
        packed = exports["echo"](store, ptr, 64)
        exports["memory"].read(store, packed >> 32, (packed >> 32) + (packed & 0xFFFFFFFF))
        bare.append(time.perf_counter() - start)
    for q, name in ((50, "p50"), (99, "p99")):
        ours = statistics.quantiles(times, n=100)[q - 1] * 1e6
        theirs = statistics.quantiles(bare, n=100)[q - 1] * 1e6
        line(f"trivial task overhead {name} (us, cached module; baseline bare wasmtime)", ours, theirs)


def bench_metering(home: Home, matmul: Task) -> None:
    off = wasm_wall(runner_for(home, Metering(fuel=False, epochs=False)), matmul)
    line("matmul with fuel metering vs none (s)",
         wasm_wall(runner_for(home, Metering(fuel=True, epochs=False)), matmul), off)
    line("matmul with epoch interruption vs none (s)",
         wasm_wall(runner_for(home, Metering(fuel=False, epochs=True)), matmul), off)
    line("matmul with fuel + epochs (the node's default) vs none (s)", wasm_wall(runner_for(home), matmul), off)


def pure_module(name: str) -> bytes:
    """The ``name`` task module built in pure WebAssembly (no host API): what the engine settings act on."""
    return resources.files("gaia_runner_wasm").joinpath("modules", f"{name}_wasm.wasm").read_bytes()


def bench_nan_canonicalization(matmul: Task, train: Task) -> None:
    """Pure-WASM kernel calls alone, in engines differing only in NaN canonicalization, and the cost of
    canonicalizing a declared f32 output instead (one pass over the output bytes after the run)."""
    from gaia_runner_wasm.sandbox import engine_config

    for name, module_name, task in (("matmul", "matmul", matmul), ("sgd", "mlp", train)):
        best = {}
        for canonical in (True, False):
            config = engine_config(1 << 20, Metering(fuel=False, epochs=False))
            config.cranelift_nan_canonicalization = canonical
            engine = wasmtime.Engine(config)
            pre = wasmtime.Linker(engine).instantiate_pre(wasmtime.Module(engine, pure_module(module_name)))
            times = []
            for _ in range(REPEATS):
                store = wasmtime.Store(engine)
                exports = pre.instantiate(store).exports(store)
                ptr = exports["gaia_alloc"](store, len(task.input))
                exports["memory"].write(store, task.input, ptr)
                start = time.perf_counter()
                packed = exports[task.entry](store, ptr, len(task.input))
                times.append(time.perf_counter() - start)
                output = exports["memory"].read(store, packed >> 32, (packed >> 32) + (packed & 0xFFFFFFFF))
            best[canonical] = min(times)
        line(f"{name} kernel call with NaN canonicalization vs without (s)", best[True], best[False])
        canonicalize = best_time(lambda data=output: canonical_f32(data), REPEATS)
        line(f"{name} kernel call without canonicalization + canonicalizing its f32 output vs with (s)",
             best[False] + canonicalize, best[True])


def canonical_f32(data: bytes) -> bytes:
    """``data`` as f32 values with every NaN replaced by the canonical 0x7FC00000."""
    values = np.frombuffer(data[: len(data) // 4 * 4], "<u4").copy()
    values[(values & 0x7F800000 == 0x7F800000) & (values & 0x007FFFFF != 0)] = 0x7FC00000
    return values.tobytes() + data[len(data) // 4 * 4:]


def bench_scaling(home: Home, matmul: Task) -> None:
    tasks = [attrs.evolve(matmul, job=f"scale-{i}") for i in range(SCALING_TASKS)]
    for task in tasks:
        _ = task.id  # hash outside the timed region
    throughput = {}
    for workers in (1, 2):
        runner = runner_for(home, workers=workers)
        runner.run_many(tasks[:workers])  # start the threads, load the module
        start = time.perf_counter()
        results = runner.run_many(tasks)
        throughput[workers] = len(tasks) / (time.perf_counter() - start)
        assert all(r.status is Status.OK for r in results)
        runner.close()
    line(f"{SCALING_TASKS} matmul tasks on 2 vs 1 worker threads (tasks/s; {os.cpu_count()} cores)",
         throughput[2], throughput[1], throughput[2] / throughput[1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp))
        lib = native_kernels(Path(tmp))
        runner = runner_for(home)
        matmul, train = bench_kernels(lib, runner)
        bench_overhead(runner)
        runner.close()
        bench_metering(home, matmul)
        bench_nan_canonicalization(matmul, train)
        bench_scaling(home, matmul)


if __name__ == "__main__":
    main()
