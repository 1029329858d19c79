"""What the benchmark scripts share to time work and print it: ``<measure>: gaia=X baseline=Y ratio=Z`` lines."""

from __future__ import annotations

import time
from collections.abc import Callable


def line(measure: str, gaia: float, baseline: float, ratio: float | None = None) -> None:
    """Print one measure; the ratio is ``gaia / baseline`` unless given."""
    ratio = gaia / baseline if ratio is None else ratio
    print(f"{measure}: gaia={gaia:.4g} baseline={baseline:.4g} ratio={ratio:.3f}", flush=True)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The shortest wall time in seconds of ``repeats`` calls of ``fn`` (robust to other load on the machine)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
