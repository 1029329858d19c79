"""CPU and memory scores measured with WebAssembly kernels run in wasmtime, as tasks are.

The kernels (``kernels.wat``) run in an engine configured like a task runner's
(fuel metering on), so a score predicts how fast this node runs tasks. Each
score is the best throughput of several timed windows, which is stable on an
idle machine; all-core scores run one wasmtime store per thread (wasmtime
releases the GIL while wasm runs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from importlib import resources

import wasmtime
from attrs import frozen

#: Matrix side of the f32 matmul: 3 matrices of 64 x 64 f32 (48 KiB) stay in cache.
MATMUL_N = 64
#: Integer operations per ``intmix`` iteration.
INT_OPS_PER_ITER = 8
#: Bytes per buffer for the copy bandwidth (large enough to leave the caches).
COPY_BYTES = 64 << 20
_PAGE = 65536
_FUEL = 1 << 62


@frozen
class Plan:
    """How long to measure: ``windows`` timed windows of about ``window_s`` seconds, best one kept."""

    windows: int
    window_s: float


QUICK = Plan(windows=3, window_s=0.08)
FULL = Plan(windows=5, window_s=0.25)


@frozen
class Throughput:
    """A measured rate (operations per second) and the fuel per second it burned (None when unknown)."""

    per_s: float
    fuel_per_s: float | None = None


class Kernels:
    """The compiled benchmark module; :meth:`worker` gives one thread its own store and instance."""

    def __init__(self) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.wasm_simd = True
        config.wasm_bulk_memory = True
        self.engine = wasmtime.Engine(config)
        text = resources.files(__package__).joinpath("kernels.wat").read_text(encoding="utf-8")
        self.module = wasmtime.Module(self.engine, text)

    def worker(self, memory_bytes: int) -> Worker:
        """A fresh store and instance whose memory holds at least ``memory_bytes``."""
        return Worker(self, memory_bytes)


def _func(exports: Mapping[str, object], name: str) -> wasmtime.Func:
    func = exports[name]
    if not isinstance(func, wasmtime.Func):
        raise TypeError(f"kernels.wat: export {name!r} is not a function")
    return func


class Worker:
    """One store + instance; use from one thread only."""

    def __init__(self, kernels: Kernels, memory_bytes: int) -> None:
        self.store = wasmtime.Store(kernels.engine)
        self.store.set_fuel(_FUEL)
        instance = wasmtime.Instance(self.store, kernels.module, [])
        exports = instance.exports(self.store)
        memory = exports["memory"]
        if not isinstance(memory, wasmtime.Memory):
            raise TypeError("kernels.wat: export 'memory' is not a memory")
        pages = -(-memory_bytes // _PAGE) - memory.size(self.store)
        if pages > 0:
            memory.grow(self.store, pages)
        _func(exports, "fill")(self.store, 0, 0x3C, memory.data_len(self.store))  # f32 0.0115: no inf, no denormals
        self.matmul, self.intmix, self.copy = (_func(exports, name) for name in ("matmul", "intmix", "copy"))

    def fuel_used(self) -> int:
        """Fuel consumed by this store so far."""
        return _FUEL - self.store.get_fuel()


@frozen
class Kernel:
    """One benchmark kernel: how much memory it needs, and a call doing ``reps`` units of work."""

    memory_bytes: int
    ops_per_rep: float
    call: Callable[[Worker, int], object]


MATMUL = Kernel(3 * 4 * MATMUL_N * MATMUL_N, 2.0 * MATMUL_N**3,
                lambda w, reps: w.matmul(w.store, MATMUL_N, reps))
INTMIX = Kernel(0, float(INT_OPS_PER_ITER), lambda w, reps: w.intmix(w.store, reps))
COPY = Kernel(2 * COPY_BYTES, 2.0 * COPY_BYTES,
              lambda w, reps: w.copy(w.store, COPY_BYTES, 0, COPY_BYTES, reps))


def _calibrate(worker: Worker, kernel: Kernel, target_s: float) -> int:
    """Repetitions of ``kernel`` that take about ``target_s`` on this machine."""
    reps = 1
    while True:
        start = time.perf_counter()
        kernel.call(worker, reps)
        elapsed = time.perf_counter() - start
        if elapsed >= target_s / 4 or reps >= 1 << 30:
            return max(1, min(1 << 30, int(reps * target_s / max(elapsed, 1e-9))))
        reps *= 4


def single(kernels: Kernels, kernel: Kernel, plan: Plan) -> Throughput:
    """The best single-thread throughput of ``kernel`` over ``plan``'s windows."""
    worker = kernels.worker(kernel.memory_bytes)
    reps = _calibrate(worker, kernel, plan.window_s)
    best = Throughput(0.0)
    for _ in range(plan.windows):
        fuel0 = worker.fuel_used()
        start = time.perf_counter()
        kernel.call(worker, reps)
        elapsed = time.perf_counter() - start
        rate = kernel.ops_per_rep * reps / elapsed
        if rate > best.per_s:
            best = Throughput(rate, (worker.fuel_used() - fuel0) / elapsed)
    return best


def parallel(kernels: Kernels, kernel: Kernel, plan: Plan, threads: int) -> Throughput:
    """The best aggregate throughput of ``kernel`` on ``threads`` threads at once."""
    if threads <= 1:
        return single(kernels, kernel, plan)
    workers = [kernels.worker(kernel.memory_bytes) for _ in range(threads)]
    reps = _calibrate(workers[0], kernel, plan.window_s)
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def run(worker: Worker) -> None:
        for _ in range(plan.windows):
            barrier.wait()
            try:
                kernel.call(worker, reps)
            except BaseException as exc:  # reported in the caller's thread
                errors.append(exc)
            barrier.wait()

    pool = [threading.Thread(target=run, args=(w,), daemon=True, name=f"gaia-bench-{i}")
            for i, w in enumerate(workers)]
    for t in pool:
        t.start()
    best = 0.0
    for _ in range(plan.windows):
        barrier.wait()
        start = time.perf_counter()
        barrier.wait()
        best = max(best, kernel.ops_per_rep * reps * threads / (time.perf_counter() - start))
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return Throughput(best)
