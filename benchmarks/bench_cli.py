"""Start-up time of the ``gaia`` command line: ``gaia --version`` and ``gaia --help``.

Prints ``measure: gaia=X baseline=Y ratio=Z`` lines (milliseconds, best of
RUNS, interleaved so load affects both alike):

* cli_version_ms / cli_help_ms: wall time of ``gaia --version`` / ``gaia --help``
  (the installed script, every plugin installed) against ``python -c pass``
  with the same interpreter, measured in the same run. Target: <= 150 ms.
* cli_over_python_ms.version / .help: the same minus Python's own start,
  what GAIA adds; the baseline is the 150 ms budget.

Run: .venv/bin/python benchmarks/bench_cli.py  (a few seconds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15
BUDGET_MS = 150.0


def line(measure: str, gaia: float, baseline: float) -> None:
    ratio = gaia / baseline if baseline else float("inf")
    print(f"{measure}: gaia={gaia:.4g} baseline={baseline:.4g} ratio={ratio:.3g}", flush=True)


def wall_ms(argv: list[str], env: dict[str, str]) -> float:
    """Milliseconds ``argv`` takes to run to its end (output discarded)."""
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True, timeout=60)
    return (time.perf_counter() - started) * 1000.0


def gaia_script() -> list[str]:
    """The installed ``gaia`` script beside this interpreter, or ``python -m gaia_core``."""
    script = Path(sys.executable).with_name("gaia")
    found = str(script) if script.exists() else shutil.which("gaia")
    return [found] if found else [sys.executable, "-m", "gaia_core"]


def main() -> None:
    gaia = gaia_script()
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if k != "GAIA_LOAD_PLUGINS"}
        env["GAIA_HOME"] = home
        commands = {"python": [sys.executable, "-c", "pass"], "version": [*gaia, "--version"],
                    "help": [*gaia, "--help"]}
        best = {name: float("inf") for name in commands}
        for _ in range(RUNS):
            for name, argv in commands.items():
                best[name] = min(best[name], wall_ms(argv, env))
    print(f"# {' '.join(gaia)}; best of {RUNS}; python -c pass {best['python']:.1f} ms", flush=True)
    for name in ("version", "help"):
        line(f"cli_{name}_ms", best[name], best["python"])
    for name in ("version", "help"):
        line(f"cli_over_python_ms.{name}", best[name] - best["python"], BUDGET_MS)


if __name__ == "__main__":
    main()
