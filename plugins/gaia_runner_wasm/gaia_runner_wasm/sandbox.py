"""The sandbox: one deterministic, metered wasmtime Engine, its epoch ticker, and WASI grants.

Nothing is granted by default. A capability reaches a task only when the task asks for it *and*
the node offers it (``[offer] capabilities``): deny wins. Without ``clock`` and ``random`` the WASI
clock, sleep and random calls answer ``ENOTCAPABLE``, so an ungranted task is deterministic.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import wasmtime

from gaia_runner_wasm.settings import Metering

WASI_MODULE = "wasi_snapshot_preview1"
#: WASI errno returned by calls a task was not granted.
ENOTCAPABLE = 76
#: Where a task granted ``fs`` sees its private scratch directory.
SCRATCH_GUEST_PATH = "/scratch"

_I32, _I64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
#: The WASI calls each capability controls beyond what linking WASI gives, with their types.
_GATED_CALLS: dict[str, tuple[tuple[str, list[wasmtime.ValType]], ...]] = {
    "clock": (("clock_time_get", [_I32, _I64, _I32]), ("clock_res_get", [_I32, _I32])),
    "random": (("random_get", [_I32, _I32]),),
}
#: WASI calls no task gets: ``poll_oneoff`` sleeps inside the host, where the epoch timeout
#: cannot interrupt it, so a sleeping task could hold a worker past its wall-clock limit.
_DENIED_CALLS = (("poll_oneoff", [_I32, _I32, _I32, _I32]),)


def engine_config(stack_bytes: int, metering: Metering) -> wasmtime.Config:
    """The engine settings every task runs under: deterministic floats, no threads, capped stack."""
    config = wasmtime.Config()
    config.consume_fuel = metering.fuel
    config.epoch_interruption = metering.epochs
    config.cranelift_nan_canonicalization = True
    config.wasm_relaxed_simd = True
    config.wasm_relaxed_simd_deterministic = True
    config.wasm_threads = False
    config.max_wasm_stack = stack_bytes
    config.cranelift_opt_level = "speed"
    return config


def fingerprint(stack_bytes: int, metering: Metering) -> str:
    """A short tag of the engine settings: compiled artifacts are only reused by an identical engine."""
    from importlib.metadata import version

    text = f"wasmtime={version('wasmtime')};stack={stack_bytes};fuel={metering.fuel};epochs={metering.epochs}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class EpochTicker:
    """One daemon thread per engine advancing its epoch every ``interval_s``: the timeout clock."""

    def __init__(self, engine: wasmtime.Engine, interval_s: float) -> None:
        self.interval_s = interval_s
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="gaia-wasm-epoch", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._engine.increment_epoch()

    def ticks_for(self, timeout_s: float) -> int:
        """The epoch deadline for ``timeout_s``: one extra tick covers the tick already under way."""
        return max(1, math.ceil(timeout_s / self.interval_s)) + 1

    def stop(self) -> None:
        """Stop ticking; idempotent."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


def granted(asked: Iterable[str], offered: Iterable[str]) -> frozenset[str]:
    """The capabilities a task gets: those it asks for that the node also offers."""
    return frozenset(asked) & frozenset(offered)


def wasi_linker(engine: wasmtime.Engine, capabilities: frozenset[str]) -> wasmtime.Linker:
    """A linker with WASI, whose clock and random calls refuse unless granted and sleeping always refuses."""
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    linker.allow_shadowing = True
    refused = [call for capability, calls in _GATED_CALLS.items() if capability not in capabilities for call in calls]
    for name, params in [*refused, *_DENIED_CALLS]:
        linker.define_func(WASI_MODULE, name, wasmtime.FuncType(params, [_I32]), _refuse)
    return linker


def _refuse(*_args: object) -> int:
    return ENOTCAPABLE


def wasi_config(*, capabilities: frozenset[str], stdin: Path | None, scratch: Path | None,
                env_names: Iterable[str], stdout: object, stderr: object) -> wasmtime.WasiConfig:
    """The WASI context of one run: stdin from a file, stdout/stderr to callbacks, grants applied."""
    config = wasmtime.WasiConfig()
    config.argv = ["task"]
    if stdin is not None:
        config.stdin_file = stdin
    config.stdout_custom = stdout
    config.stderr_custom = stderr
    if "env" in capabilities:
        config.env = [(name, os.environ[name]) for name in env_names if name in os.environ]
    if "fs" in capabilities and scratch is not None:
        config.preopen_dir(str(scratch), SCRATCH_GUEST_PATH)
    return config
