"""Which task ABI a module follows, detected from its exports (docs/task-abi.md).

* ``gaia``: exports ``memory`` and ``gaia_alloc(i32) -> i32``; entries are ``(i32, i32) -> i64``
  exports. Input goes in through linear memory, output comes back as a packed pointer/length.
* ``wasi``: a WASI command exporting ``_start``; entries are ``() -> ()`` exports (usually
  ``_start``). Input is stdin, output is stdout.

A module may import only WASI (``wasi_snapshot_preview1``), the tensor host API (``gaia_tensor``,
see :mod:`gaia_runner_wasm.tensor_host`) and the blob host API (``gaia_blob``, see
:mod:`gaia_runner_wasm.blob_host`); any other import makes it invalid.
"""

from __future__ import annotations

import enum

import wasmtime
from attrs import frozen

from gaia_runner_wasm import blob_host, tensor_host
from gaia_runner_wasm.sandbox import WASI_MODULE

#: The host modules a task may import, and the check of each import's name and type.
_HOSTS = {tensor_host.TENSOR_MODULE: tensor_host.import_problem, blob_host.BLOB_MODULE: blob_host.import_problem}

ALLOC_EXPORT = "gaia_alloc"
MEMORY_EXPORT = "memory"
#: Entries of GAIA-ABI modules return this length to refuse their input (see gaia_fail in gaia_abi.h).
FAIL_LENGTH = 0xFFFFFFFF


class Abi(str, enum.Enum):
    """How data goes in and out of a module."""

    GAIA = "gaia"
    WASI = "wasi"


class AbiError(Exception):
    """The module cannot run as a task; the message says why and what to change."""


@frozen
class Shape:
    """What the runner needs to know about a compiled module."""

    abi: Abi
    entries: frozenset[str]
    uses_wasi: bool

    def check_entry(self, entry: str) -> None:
        """Raise AbiError unless ``entry`` is a callable entry of this module."""
        if entry not in self.entries:
            kind = "(i32, i32) -> i64" if self.abi is Abi.GAIA else "() -> ()"
            known = ", ".join(sorted(self.entries)) or "none"
            raise AbiError(f"module has no {self.abi.value}-ABI entry {entry!r} of type {kind}; "
                           f"its entries: {known}")


def _signature(ty: wasmtime.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(str(p) for p in ty.params), tuple(str(r) for r in ty.results)


def inspect(module: wasmtime.Module) -> Shape:
    """Detect the module's ABI and entries; AbiError for unknown imports or no known ABI."""
    known = {WASI_MODULE, *_HOSTS}
    foreign = sorted(f"{i.module}::{i.name}" for i in module.imports if i.module not in known)
    if foreign:
        raise AbiError(f"unknown import {foreign[0]}: a task module may import only {WASI_MODULE}, "
                       f"{' and '.join(_HOSTS)}")
    for i in module.imports:
        problem = _HOSTS[i.module](i.name or "", i.type) if i.module in _HOSTS else None
        if problem:
            raise AbiError(problem)
    funcs = {e.name: _signature(e.type) for e in module.exports if isinstance(e.type, wasmtime.FuncType)}
    names = {e.name for e in module.exports}
    uses_wasi = any(i.module == WASI_MODULE for i in module.imports)
    if funcs.get(ALLOC_EXPORT) == (("i32",), ("i32",)) and MEMORY_EXPORT in names:
        entries = frozenset(n for n, sig in funcs.items() if sig == (("i32", "i32"), ("i64",)))
        return Shape(Abi.GAIA, entries, uses_wasi)
    if funcs.get("_start") == ((), ()):
        return Shape(Abi.WASI, frozenset(n for n, sig in funcs.items() if sig == ((), ())), True)
    raise AbiError(f"module follows no known task ABI: export {MEMORY_EXPORT!r} and "
                   f"{ALLOC_EXPORT}(i32) -> i32 (GAIA ABI) or _start() (WASI command)")
