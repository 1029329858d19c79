"""The ``gaia_tensor`` import module: gaia-native's deterministic tensor kernels for WASM tasks.

A task imports these functions (``modules/src/gaia_tensor.h``; docs/task-abi.md, "Tensor host API")
and the runner links them on every linker it makes (:func:`define`). Each call is checked against
the calling module's exported ``memory`` in gaia-native, which refuses bad arguments before anything
is written; here a refusal becomes a trap of the task. Each call is charged to the task's fuel by its
work, before it runs: a call that does not fit the fuel left sets it to 0 and traps, so the run ends
as ``out_of_fuel``.
A refusal traps through :func:`gaia_runner_wasm.host_trap.trap`, which keeps the reason per thread.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import wasmtime

import gaia_native
from gaia_runner_wasm.host_trap import trap

TENSOR_MODULE = "gaia_tensor"
#: Import name -> WASM parameter types ("i" i32, "f" f32); the functions return nothing.
SIGNATURES: dict[str, str] = dict(gaia_native.tensor_signatures())
_TYPES = {"i": wasmtime.ValType.i32(), "f": wasmtime.ValType.f32()}
_UNMETERED = 2**64 - 1


class _Meter(threading.local):
    """The run under way on this thread (the guest's thread makes its tensor calls): the store whose
    fuel pays for them, and the guest's memory once a call has looked it up."""

    active: bool = False
    store: wasmtime.Store | None = None
    memory: wasmtime.Memory | None = None
    #: A view of the memory's bytes, valid while its length is unchanged: wasmtime moves a memory
    #: only when it grows. Making one costs more than most calls (ctypes), so it is kept.
    buffer: ctypes.Array[ctypes.c_ubyte] | None = None


_meter = _Meter()


@contextmanager
def metered(store: wasmtime.Store | None) -> Iterator[None]:
    """Charge the tensor calls made on this thread meanwhile to ``store``'s fuel (None: no metering).

    One run (one store) at a time per thread: the guest's memory is looked up once per run.
    """
    _meter.active, _meter.store, _meter.memory, _meter.buffer = True, store, None, None
    try:
        yield
    finally:
        _meter.active, _meter.store, _meter.memory, _meter.buffer = False, None, None, None



def func_type(params: str) -> wasmtime.FuncType:
    """The WASM type of a function with these parameter letters and no result."""
    return wasmtime.FuncType([_TYPES[p] for p in params], [])


def import_problem(name: str, ty: object) -> str | None:
    """Why ``gaia_tensor::name`` of type ``ty`` cannot be linked, or None when it can."""
    params = SIGNATURES.get(name)
    if params is None:
        return f"gaia_tensor has no function {name!r}; it has: {', '.join(sorted(SIGNATURES))}"
    want = "(" + ", ".join(str(_TYPES[p]) for p in params) + ") -> ()"
    got = (f"({', '.join(str(t) for t in ty.params)}) -> ({', '.join(str(t) for t in ty.results)})"
           if isinstance(ty, wasmtime.FuncType) else "not a function")
    if got != want:
        return f"gaia_tensor::{name} is imported as {got}; gaia_tensor.h declares {want}"
    return None


def define(linker: wasmtime.Linker) -> None:
    """Define every ``gaia_tensor`` function on ``linker``."""
    for name, params in SIGNATURES.items():
        linker.define_func(TENSOR_MODULE, name, func_type(params), _host_function(name, params), access_caller=True)


def _host_function(name: str, params: str) -> Callable[..., None]:
    has_alpha = params.startswith("f")

    def host(caller: wasmtime.Caller, *args: int | float) -> None:
        alpha, ints = (float(args[0]), args[1:]) if has_alpha else (0.0, args)
        _call(caller, name, [int(a) for a in ints], alpha)

    host.__name__ = f"gaia_tensor_{name}"
    return host


def _call(caller: wasmtime.Caller, name: str, args: list[int], alpha: float) -> None:
    memory = _meter.memory
    if memory is None:
        found = caller.get("memory")
        if not isinstance(found, wasmtime.Memory):
            trap(f"gaia_tensor.{name}: the module exports no memory named 'memory'")
        memory = found
        if _meter.active:
            _meter.memory = memory
    buffer = _meter.buffer
    if buffer is None or len(buffer) != memory.data_len(caller):
        buffer = memory.get_buffer_ptr(caller)
        if _meter.active:
            _meter.buffer = buffer
    store = _meter.store
    budget = store.get_fuel() if store is not None else _UNMETERED
    try:
        cost = gaia_native.tensor_call(name, buffer, args, alpha=alpha, budget=budget)
    except ValueError as exc:
        trap(f"gaia_tensor.{name}: {exc}")
    if store is None:
        return
    if cost > budget:
        store.set_fuel(0)
        trap(f"gaia_tensor.{name}: needs {cost} fuel, {budget} left")
    store.set_fuel(budget - cost)

