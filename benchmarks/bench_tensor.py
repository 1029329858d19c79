"""The tensor host API (gaia_tensor) against native code, measured in one run.

Prints ``<measure>: gaia=X baseline=Y ratio=Z`` lines, in GFLOP/s (2 flops per multiply-add), so
``ratio`` is GAIA's speed as a fraction of the baseline's (target >= 0.8):

* matmul 256^3 as a WASM task (matmul.wasm, which calls gt_gemm) vs the same product in C
  (modules/src/kernels.c) compiled here with ``gcc -O3 -march=native``, single thread; beside it
  the same task in pure WebAssembly (matmul_wasm.wasm) and numpy/OpenBLAS on one thread (the limit
  in view, with FMA and its own summation order);
* MLP inference (mlp.wasm on the host API vs mlp_wasm.wasm in pure WebAssembly), tasks/s;
* conv2d (8 images 16x32x32, 32 filters 3x3, pad 1) as a WASM task calling gt_conv2d
  (tensor_test.wasm: the task copies its input in and its tensors out) vs a direct convolution loop
  in C with ``gcc -O3 -march=native``, and numpy (im2col + one matmul) on one thread.

Task timings are the task's own wall time (instantiation, input, call, output; hashing aside), the
best of REPEATS; the "entry call alone" line times only the call of an instantiated module whose
input is written (what a native call is timed for); native timings the best of REPEATS calls.
Needs gcc for the C baselines (skipped with a line without it). Run: ``python benchmarks/bench_tensor.py`` (about 20 s).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import wasmtime
from measures import best_time, line

import gaia_native
from gaia_core.config import Config, Home
from gaia_core.model import Limits, Status, Task
from gaia_core.roles import NodeContext
from gaia_runner_wasm import Metering, WasmRunner, tensor_host, workloads as w
from gaia_runner_wasm.sandbox import engine_config

N = 256
REPEATS = 15
CONV = {"n": 8, "c": 16, "h": 32, "wd": 32, "oc": 32, "kh": 3, "kw": 3, "stride": 1, "pad": 1}

CONV_C = r"""
/* y[n,o,oy,ox] = sum over c, ky, kx of w * x (zero padding), then + bias: the direct loop. */
void conv2d(const float *restrict x, const float *restrict w, const float *restrict bias, float *restrict y,
            int n, int c, int h, int wd, int oc, int kh, int kw, int stride, int pad) {
    const int oh = (h + 2 * pad - kh) / stride + 1, ow = (wd + 2 * pad - kw) / stride + 1;
    for (int b = 0; b < n; b++)
        for (int o = 0; o < oc; o++) {
            float *out = y + ((long)b * oc + o) * oh * ow;
            for (int i = 0; i < oh * ow; i++) out[i] = 0.0f;
            for (int ci = 0; ci < c; ci++)
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++) {
                        const float wv = w[((o * c + ci) * kh + ky) * kw + kx];
                        const float *in = x + ((long)b * c + ci) * h * wd;
                        for (int oy = 0; oy < oh; oy++) {
                            const int iy = oy * stride + ky - pad;
                            if (iy < 0 || iy >= h) continue;
                            for (int ox = 0; ox < ow; ox++) {
                                const int ix = ox * stride + kx - pad;
                                if (ix >= 0 && ix < wd) out[oy * ow + ox] += wv * in[iy * wd + ix];
                            }
                        }
                    }
            for (int i = 0; i < oh * ow; i++) out[i] += bias[o];
        }
}
"""


def task_time(runner: WasmRunner, task: Task) -> tuple[float, bytes]:
    first = runner.run(task)  # compile and warm up
    assert first.status is Status.OK, first.message
    times = []
    for _ in range(REPEATS):
        result = runner.run(task)
        assert result.status is Status.OK, result.message
        times.append(result.wall_s)
    return min(times), first.output


def entry_call_time(module: bytes, entry: str, data: bytes) -> float:
    """The entry call alone (instantiated, input written; metered as in a node): what a native call is."""
    engine = wasmtime.Engine(engine_config(1 << 20, Metering(fuel=True, epochs=False)))
    linker = wasmtime.Linker(engine)
    tensor_host.define(linker)
    pre = linker.instantiate_pre(wasmtime.Module(engine, module))
    times = []
    for _ in range(REPEATS):
        store = wasmtime.Store(engine)
        store.set_fuel(10**12)
        exports = pre.instantiate(store).exports(store)
        alloc, call, memory = exports["gaia_alloc"], exports[entry], exports["memory"]
        assert isinstance(alloc, wasmtime.Func) and isinstance(call, wasmtime.Func)
        assert isinstance(memory, wasmtime.Memory)
        ptr = alloc(store, len(data))
        memory.write(store, data, ptr)
        with tensor_host.metered(store):
            start = time.perf_counter()
            call(store, ptr, len(data))
            times.append(time.perf_counter() - start)
        store.close()
    return min(times)


def gcc_library(tmp: Path, name: str, *sources: Path) -> ctypes.CDLL:
    library = tmp / f"lib{name}.so"
    subprocess.run(["gcc", "-O3", "-march=native", "-shared", "-fPIC", "-o", str(library), *map(str, sources)],
                   check=True)
    return ctypes.CDLL(str(library))


def bench_matmul(runner: WasmRunner, tmp: Path | None) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-1, 1, (N, N)).astype(np.float32), rng.uniform(-1, 1, (N, N)).astype(np.float32)
    task = w.matmul_task(w.f32(a.ravel().tolist()), w.f32(b.ravel().tolist()), N, N, N)
    gflop = 2 * N**3 / 1e9
    host, out = task_time(runner, task)
    pure_module = resources.files("gaia_runner_wasm").joinpath("modules", "matmul_wasm.wasm").read_bytes()
    pure, pure_out = task_time(runner, Task.create(pure_module, entry="matmul", input=task.input, limits=task.limits))
    assert out == pure_out, "the host API and the pure-WASM kernel differ"
    title = f"matmul {N}^3 f32 (GFLOP/s)"
    if tmp is not None:
        source = resources.files("gaia_runner_wasm").joinpath("modules", "src", "kernels.c")
        lib = gcc_library(tmp, "kernels", Path(str(source)))
        u32, fp = ctypes.c_uint32, ctypes.POINTER(ctypes.c_float)
        lib.matmul.argtypes = [fp, fp, fp, u32, u32, u32]
        c = np.zeros((N, N), np.float32)
        pa, pb, pc = (arr.ctypes.data_as(fp) for arr in (a, b, c))
        native = best_time(lambda: lib.matmul(pa, pb, pc, N, N, N), REPEATS)
        line(f"{title} WASM task on the host API vs gcc -O3 -march=native C", gflop / host, gflop / native)
        call = entry_call_time(w.module_bytes("matmul"), "matmul", task.input)
        line(f"{title} its entry call alone (the task's own work) vs gcc -O3 -march=native C", gflop / call,
             gflop / native)
        line(f"{title} pure-WASM task vs gcc -O3 -march=native C", gflop / pure, gflop / native)
    line(f"{title} WASM task on the host API vs pure-WASM task", gflop / host, gflop / pure)
    line(f"{title} WASM task on the host API vs numpy/OpenBLAS 1 thread (the limit)", gflop / host,
         gflop / best_time(lambda: a @ b, REPEATS))
    mem = np.concatenate([a.ravel(), b.ravel(), np.zeros(N * N, np.float32)])
    kernel = best_time(lambda: gaia_native.tensor_call("gemm", mem, [0, N * N * 4, 2 * N * N * 4, N, N, N, 0]), REPEATS)
    line(f"{title} gaia_native gemm alone ({gaia_native.tensor_paths()[-1]}) vs numpy/OpenBLAS 1 thread",
         gflop / kernel, gflop / best_time(lambda: a @ b, REPEATS))


def bench_mlp_inference(runner: WasmRunner) -> None:
    data = w.load_digits()
    model = w.Mlp.init(64, 32, 10, seed=0)
    task = w.infer_task(model, data.x)
    host, out = task_time(runner, task)
    pure_module = resources.files("gaia_runner_wasm").joinpath("modules", "mlp_wasm.wasm").read_bytes()
    pure, pure_out = task_time(runner, Task.create(pure_module, entry="infer", input=task.input, limits=task.limits))
    assert w.predictions(out, 10) == w.predictions(pure_out, 10), "host API and pure-WASM MLPs disagree"
    line(f"mlp 64-32-10 inference on {len(data)} digits (tasks/s) host API vs pure-WASM task", 1 / host, 1 / pure)


def conv_task(x: np.ndarray, wt: np.ndarray, bias: np.ndarray, y_len: int) -> Task:
    """A tensor_test.wasm task calling gt_conv2d on x, w, bias (blob offsets) into y."""
    module = resources.files("gaia_runner_wasm").joinpath("modules", "tensor_test.wasm").read_bytes()
    index = [name for name, _ in gaia_native.tensor_signatures()].index("conv2d")
    at_w, at_b = x.size * 4, (x.size + wt.size) * 4
    at_y = at_b + bias.size * 4
    args = [0, at_w, at_b, at_y, *CONV.values()]
    header = struct.pack("<2I13i", index, 0b1111, *args).ljust(64, b"\0")
    blob = np.concatenate([x.ravel(), wt.ravel(), bias, np.zeros(y_len, np.float32)])
    return Task.create(module, entry="call", input=header + blob.tobytes(), limits=Limits(memory_bytes=64 << 20))


def bench_conv(runner: WasmRunner, tmp: Path | None) -> None:
    p = CONV
    rng = np.random.default_rng(2)
    x = rng.standard_normal((p["n"], p["c"], p["h"], p["wd"])).astype(np.float32)
    wt = rng.standard_normal((p["oc"], p["c"], p["kh"], p["kw"])).astype(np.float32)
    bias = rng.standard_normal(p["oc"]).astype(np.float32)
    oh = (p["h"] + 2 * p["pad"] - p["kh"]) // p["stride"] + 1
    ow = (p["wd"] + 2 * p["pad"] - p["kw"]) // p["stride"] + 1
    y_len = p["n"] * p["oc"] * oh * ow
    gflop = 2 * y_len * p["c"] * p["kh"] * p["kw"] / 1e9
    host, out = task_time(runner, conv_task(x, wt, bias, y_len))
    y = np.frombuffer(out, np.float32)[-y_len:]
    title = f"conv2d {p['n']}x{p['c']}x{p['h']}x{p['wd']} * {p['oc']}x{p['kh']}x{p['kw']} pad {p['pad']} (GFLOP/s)"
    if tmp is not None:
        src = tmp / "conv.c"
        src.write_text(CONV_C)
        lib = gcc_library(tmp, "conv", src)
        fp = ctypes.POINTER(ctypes.c_float)
        lib.conv2d.argtypes = [fp, fp, fp, fp, *[ctypes.c_int] * 9]
        y_native = np.zeros(y_len, np.float32)
        ptrs = [arr.ctypes.data_as(fp) for arr in (x, wt, bias, y_native)]
        native = best_time(lambda: lib.conv2d(*ptrs, *p.values()), REPEATS)
        assert np.allclose(y, y_native, rtol=1e-4, atol=1e-4), "host API and C conv2d disagree"
        line(f"{title} WASM task on the host API vs gcc -O3 -march=native C loop", gflop / host, gflop / native)

    xp = np.pad(x, ((0, 0), (0, 0), (p["pad"], p["pad"]), (p["pad"], p["pad"])))
    w2 = wt.reshape(p["oc"], -1)

    def numpy_conv() -> np.ndarray:
        win = np.lib.stride_tricks.sliding_window_view(xp, (p["kh"], p["kw"]), axis=(2, 3))  # n c oh ow kh kw
        cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(p["n"], -1, oh * ow)
        return np.matmul(w2, cols) + bias[None, :, None]

    line(f"{title} WASM task on the host API vs numpy im2col+matmul 1 thread", gflop / host,
         gflop / best_time(numpy_conv, REPEATS))


def main() -> None:
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":  # OpenBLAS reads it once, as numpy loads
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    with tempfile.TemporaryDirectory() as tmp:
        runner = WasmRunner(NodeContext(config=Config(), home=Home(Path(tmp) / "home")))
        gcc = Path(tmp) if shutil.which("gcc") else None
        if gcc is None:
            print("skip: gcc not found; the C baselines need it (apt-get install gcc)", flush=True)
        print(f"# gaia_native tensor paths: {', '.join(gaia_native.tensor_paths())}", flush=True)
        try:
            bench_matmul(runner, gcc)
            bench_conv(runner, gcc)
            bench_mlp_inference(runner)
        finally:
            runner.close()


if __name__ == "__main__":
    main()
