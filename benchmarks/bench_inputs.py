"""Reading the inputs of ``gaia task submit --input DIR`` (2,000 files of 4 KiB), sized before reading.

Prints ``measure: gaia=X baseline=Y ratio=Z`` (milliseconds, best of RUNS, same run):

* inputs_2000_ms: ``gaia_core.commands.inputs`` expanding the directory, sizing every file against
  ``[admission] max_input_bytes`` and reading each with the bounded reader, against the plain
  ``[p.read_bytes() for p in sorted(dir.iterdir())]`` (no size check). Target: ratio <= 2.

Run: .venv/bin/python benchmarks/bench_inputs.py  (a second or two).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gaia_core.commands import inputs
from gaia_core.commands.params import read_input
from gaia_core.config import AdmissionSection

FILES = 2000
SIZE = 4096
RUNS = 7


def best_ms(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        best = min(best, (time.perf_counter() - started) * 1000.0)
    return best


def main() -> None:
    limits = AdmissionSection()
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        for i in range(FILES):
            (folder / f"{i:05d}.bin").write_bytes(bytes([i % 256]) * SIZE)

        def gaia() -> list[bytes]:
            names = inputs.expand([str(folder)])
            inputs.check_sizes(names, limits)
            return [read_input(name, limits) for name in inputs.progress(names, show=False)]

        def baseline() -> list[bytes]:
            return [p.read_bytes() for p in sorted(folder.iterdir())]

        assert gaia() == baseline()
        ours, plain = best_ms(gaia), best_ms(baseline)
    print(f"inputs_{FILES}_ms: gaia={ours:.4g} baseline={plain:.4g} ratio={ours / plain:.3g}", flush=True)


if __name__ == "__main__":
    main()
