"""The kernel's reader of WASM exports agrees with wasmtime, and picks the entry the runner would call."""

from __future__ import annotations

import pytest

from gaia_core.wasm_exports import default_entry, function_exports

wasmtime = pytest.importorskip("wasmtime")
workloads = pytest.importorskip("gaia_runner_wasm.workloads")

#: A WASI command importing one of each kind (function, memory, global, table) and exporting several functions.
WASI_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "mem" (memory 1 2))
  (import "wasi_snapshot_preview1" "g" (global i32))
  (import "wasi_snapshot_preview1" "t" (table 1 funcref))
  (func (export "_start"))
  (func (export "other") (param f64) (result f32) f32.const 1)
  (export "write" (func $w)))"""
#: The GAIA ABI with two entries, and a module that follows no task ABI.
TWO_ENTRIES_WAT = """(module (memory (export "memory") 1)
  (func (export "gaia_alloc") (param i32) (result i32) i32.const 0)
  (func (export "b") (param i32 i32) (result i64) i64.const 0)
  (func (export "a") (param i32 i32) (result i64) i64.const 0))"""
NO_ABI_WAT = '(module (func (export "f")))'


def _modules() -> dict[str, bytes]:
    shipped = {name: workloads.module_bytes(name) for name in workloads.MODULES}
    written = {name: wasmtime.wat2wasm(wat) for name, wat in
               (("wasi", WASI_WAT), ("two", TWO_ENTRIES_WAT), ("none", NO_ABI_WAT))}
    return {**shipped, **written}


@pytest.mark.parametrize(("name", "module"), list(_modules().items()), ids=list(_modules()))
def test_function_exports_match_wasmtime(name: str, module: bytes) -> None:
    compiled = wasmtime.Module(wasmtime.Engine(), module)
    expected = {e.name: (tuple(str(p) for p in e.type.params), tuple(str(r) for r in e.type.results))
                for e in compiled.exports if isinstance(e.type, wasmtime.FuncType)}
    assert function_exports(module) == expected


@pytest.mark.parametrize(("name", "entry"), [("echo", "echo"), ("matmul", "matmul"), ("upper", "_start"),
                                             ("wasi", "_start")])
def test_default_entry_is_the_one_task_export_or_start(name: str, entry: str) -> None:
    assert default_entry(_modules()[name]) == entry


@pytest.mark.parametrize(("name", "message"), [
    ("mlp", "the module exports 2 entries (infer, train); name one"),
    ("two", "the module exports 2 entries (a, b); name one"),
    ("none", "the module exports neither gaia_alloc (GAIA ABI) nor _start (WASI command)"),
])
def test_no_default_entry_says_why(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        default_entry(_modules()[name])


@pytest.mark.parametrize(("data", "message"), [
    (b"", "truncated"), (b"\x7fELF\x02\x01\x01\x00", "not a WebAssembly module"),
    (b"\0asm\x01\0\0\0\x07\x05", "truncated"),  # a section longer than the file
    (b"\0asm\x01\0\0\0\x07\x05\x01\x01f\x00\x00", "exports a function it does not define"),
    (b"\0asm\x01\0\0\0\x01\x0b" + b"\x80" * 10 + b"\x01", "malformed integer"),  # an endless LEB128
])
def test_malformed_modules_are_value_errors(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        function_exports(data)
