"""The ``gaia_blob`` import module: a WASM task reads the blobs it names (``Task.blobs``), read-only.

A task imports ``count``, ``size`` and ``read`` (``modules/src/gaia_blob.h``; docs/task-abi.md,
"Blobs"); the runner links them on every linker it makes (:func:`define`). The node has fetched and
verified every blob before the runner is called; :func:`opened` opens their files read-only for one
run on the calling thread, and a ``read`` copies a range of one straight into the guest's memory
(``preadv`` into the memory's bytes, no copy in between). Bad arguments trap the task; each read is
charged to fuel by the bytes it copies, before it copies them. Traps go through
:func:`gaia_runner_wasm.host_trap.trap` (the reason kept per thread).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import wasmtime

from gaia_core.plugin_api import TaskError
from gaia_runner_wasm.host_trap import trap

BLOB_MODULE = "gaia_blob"
#: Fuel one call costs whatever it copies.
CALL_FUEL = 100
#: Bytes one unit of fuel copies (a WASM copy loop spends about one instruction per 8 bytes).
BYTES_PER_FUEL = 8
#: Bytes one ``read`` copies at most (its result is an i32).
MAX_READ = 1 << 30

#: Import name -> (parameter types, result types) as wasmtime spells them.
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "count": ((), ("i32",)),
    "size": (("i32",), ("i64",)),
    "read": (("i32", "i64", "i32", "i32"), ("i32",)),
}
_TYPES = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64}


class _Run(threading.local):
    """The run under way on this thread: its blobs' open files and sizes, and the store paying for reads."""

    files: tuple[int, ...] = ()
    sizes: tuple[int, ...] = ()
    store: wasmtime.Store | None = None


_run = _Run()


@contextmanager
def opened(paths: Sequence[Path], store: wasmtime.Store | None) -> Iterator[None]:
    """Open ``paths`` (the task's blobs, in order) read-only for the run on this thread; reads are charged to
    ``store``'s fuel (None: no metering). TaskError when one cannot be opened."""
    with ExitStack() as stack:
        files = []
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise TaskError(f"cannot open blob {path.name[:16]}…: {exc.strerror}",
                                hint="it left the node's store before the run; run the task again") from None
            stack.callback(os.close, fd)
            files.append(fd)
        _run.files, _run.sizes, _run.store = tuple(files), tuple(os.fstat(fd).st_size for fd in files), store
        try:
            yield
        finally:
            _run.files, _run.sizes, _run.store = (), (), None


def import_problem(name: str, ty: object) -> str | None:
    """Why ``gaia_blob::name`` of type ``ty`` cannot be linked, or None when it can."""
    want = SIGNATURES.get(name)
    if want is None:
        return f"gaia_blob has no function {name!r}; it has: {', '.join(sorted(SIGNATURES))}"
    if not isinstance(ty, wasmtime.FuncType) or (tuple(map(str, ty.params)), tuple(map(str, ty.results))) != want:
        return f"gaia_blob::{name} is imported with another type than gaia_blob.h declares"
    return None


def define(linker: wasmtime.Linker) -> None:
    """Define every ``gaia_blob`` function on ``linker``."""
    calls: dict[str, Callable[..., int]] = {"count": _count, "size": _size, "read": _read}
    for name, (params, results) in SIGNATURES.items():  # a FuncType is used up by the linker: one each time
        ty = wasmtime.FuncType([_TYPES[p]() for p in params], [_TYPES[r]() for r in results])
        linker.define_func(BLOB_MODULE, name, ty, calls[name], access_caller=True)


def _count(_caller: wasmtime.Caller) -> int:
    return len(_run.files)


def _index(call: str, index: int) -> int:
    if not 0 <= index < len(_run.files):
        trap(f"gaia_blob.{call}: no blob {index}; the task names {len(_run.files)}")
    return index


def _size(_caller: wasmtime.Caller, index: int) -> int:
    return _run.sizes[_index("size", index)]


def _read(caller: wasmtime.Caller, index: int, offset: int, dest: int, length: int) -> int:
    size = _run.sizes[_index("read", index)]
    dest, length = dest & 0xFFFFFFFF, length & 0xFFFFFFFF
    if not 0 <= offset <= size:
        trap(f"gaia_blob.read: offset {offset} is outside blob {index} of {size} bytes")
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        trap("gaia_blob.read: the module exports no memory named 'memory'")
    if dest + length > memory.data_len(caller):
        trap(f"gaia_blob.read: [{dest}, {dest + length}) is outside the module's memory")
    count = min(length, size - offset, MAX_READ)
    store = _run.store
    if store is not None:
        cost, budget = CALL_FUEL + count // BYTES_PER_FUEL, store.get_fuel()
        if cost > budget:
            store.set_fuel(0)
            trap(f"gaia_blob.read: needs {cost} fuel, {budget} left")
        store.set_fuel(budget - cost)
    if not count:
        return 0
    view = memoryview(memory.get_buffer_ptr(caller)).cast("B")[dest:dest + count]
    done = 0
    while done < count:  # a regular file reads short only at its end, which the size excludes
        got = os.preadv(_run.files[index], [view[done:]], offset + done)
        if got <= 0:
            trap(f"gaia_blob.read: blob {index} ended early on disk")
        done += got
    return done
