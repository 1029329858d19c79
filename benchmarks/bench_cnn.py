"""The digits CNN on the tensor host API against the same CNN in pure WebAssembly, measured in one run.

Prints ``<measure>: gaia=X baseline=Y ratio=Z`` lines:

* one federated round's training (6 shards of the digits, 5 epochs each, 16 filters), run one task
  after another on one runner: ``cnn.wasm`` calling the host API vs the same ``cnn_task.c`` linked with
  ``benchmarks/cnn_tensor_pure.c`` (plain C versions of the gaia_tensor functions, compiled here with
  clang to a module with no imports) — seconds, lower is better;
* inference tasks of 120 images per second, both ways — higher is better.

Times are this process's CPU seconds (the tasks run on the calling thread), best of a few runs, so that
other load on the machine does not count. Needs clang with the wasm32 target and wasi-libc (as ``make wasm``).
Run: ``python benchmarks/bench_cnn.py`` (under a minute on 2 cores).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from gaia_core.config import Config, Home
from gaia_core.model import Status, Task
from gaia_core.roles import NodeContext
from gaia_runner_wasm import WasmRunner, cnn

TRAIN_REPEATS = 3
INFER_REPEATS = 20
SHARDS, EPOCHS, FILTERS = 6, 5, 16


def line(measure: str, gaia: float, baseline: float) -> None:
    print(f"{measure}: gaia={gaia:.4g} baseline={baseline:.4g} ratio={gaia / baseline:.3f}", flush=True)


def pure_module(tmp: Path) -> bytes:
    """cnn_task.c with the tensor functions compiled in (no host imports)."""
    src = resources.files("gaia_runner_wasm").joinpath("modules", "src")
    out = tmp / "cnn_pure.wasm"
    subprocess.run(["clang", "--target=wasm32-wasi", "-O3", "-msimd128", "-mbulk-memory", "-ffp-contract=off",
                    "-nostdlib", "-Wl,--no-entry", "-Wl,-z,stack-size=65536", f"-I{src}", "-o", str(out),
                    str(src.joinpath("cnn_task.c")), str(src.joinpath("gaia_abi.c")),
                    str(Path(__file__).with_name("cnn_tensor_pure.c")), "-lc"], check=True)
    return out.read_bytes()


def as_module(task: Task, module: bytes) -> Task:
    """The same entry and input, run by another module."""
    return Task.create(module, entry=task.entry, input=task.input)


def best(runner: WasmRunner, tasks: list[Task], repeats: int) -> float:
    """The best CPU time of running ``tasks`` one after another (after one warm-up run)."""
    times = []
    for _ in range(repeats + 1):
        start = time.process_time()
        for task in tasks:
            result = runner.run(task)
            assert result.status is Status.OK, result.message
        times.append(time.process_time() - start)
    return min(times[1:])


def main() -> None:
    if shutil.which("clang") is None:
        print("skipped: bench_cnn needs clang with the wasm32 target (apt-get install clang lld wasi-libc)")
        return
    workload = cnn.DigitsCnn()
    shards, held_out = workload.partition(SHARDS, 3, seed=0)
    model = workload.init_model(FILTERS, seed=0)
    train = [cnn.train_task(model, s.x, s.y, epochs=EPOCHS, seed=1) for s in shards]
    infer = [cnn.infer_task(model, held_out[0].x)]
    with tempfile.TemporaryDirectory() as tmp:
        pure = pure_module(Path(tmp))
        (Path(tmp) / "home").mkdir()
        runner = WasmRunner(NodeContext(config=Config(), home=Home(Path(tmp) / "home")))
        try:
            host_train = best(runner, train, TRAIN_REPEATS)
            pure_train = best(runner, [as_module(t, pure) for t in train], TRAIN_REPEATS)
            line(f"cnn training, one round ({SHARDS} shards x {EPOCHS} epochs) host API vs pure WASM (s)",
                 host_train, pure_train)
            host_infer = INFER_REPEATS / best(runner, infer * INFER_REPEATS, 1)
            pure_infer = INFER_REPEATS / best(runner, [as_module(infer[0], pure)] * INFER_REPEATS, 1)
            line(f"cnn inference, {len(held_out[0])} images per task, host API vs pure WASM (tasks/s)",
                 host_infer, pure_infer)
        finally:
            runner.close()


if __name__ == "__main__":
    sys.exit(main())
