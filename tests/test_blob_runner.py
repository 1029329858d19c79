"""Runners read a task's blobs: ``plugin_api.blob_paths`` gives the files, and a WASM task reads them through
the ``gaia_blob`` host API (docs/task-abi.md, "Blobs"): bounds-checked, charged to fuel, read-only."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import wasmtime

from gaia_core.blobs import home_store
from gaia_core.errors import GaiaError
from gaia_core.model import Limits, Status, Task
from gaia_core.plugin_api import blob_paths
from gaia_core.roles import NodeContext
from gaia_runner_wasm import WasmRunner, blob_host

#: An entry calling gaia_blob.read(index, offset, dest, len) with the four values of its input;
#: its output is the i32 the call returned.
READ_WAT = """
(module
  (import "gaia_blob" "read" (func $read (param i32 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "gaia_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "call") (param $p i32) (param $n i32) (result i64)
    (i32.store (i32.const 0)
      (call $read (i32.load (local.get $p)) (i64.load offset=4 (local.get $p))
                  (i32.load offset=12 (local.get $p)) (i32.load offset=16 (local.get $p))))
    (i64.const 4)))
"""


def fnv1a(data: bytes) -> int:
    """The 64-bit FNV-1a digest blob_digest.wasm computes."""
    digest = 0xCBF29CE484222325
    for byte in data:
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return digest


def digest_module() -> bytes:
    """The shipped module that digests every blob of its task (modules/src/blob_digest.c)."""
    return resources.files("gaia_runner_wasm").joinpath("modules", "blob_digest.wasm").read_bytes()


@pytest.fixture
def runner(node_context: NodeContext) -> Iterator[WasmRunner]:
    """A WASM runner on the isolated home."""
    made = WasmRunner(node_context)
    yield made
    made.close()


@pytest.fixture
def blobs(node_context: NodeContext, tmp_path: Path) -> Iterator[tuple[list[str], list[bytes]]]:
    """Two blobs added to the isolated home's store: 1.5 MiB of random bytes and an empty one."""
    contents = [os.urandom(3 << 19), b""]
    store = home_store(node_context.home)
    ids = []
    for i, data in enumerate(contents):
        source = tmp_path / f"blob{i}"
        source.write_bytes(data)
        ids.append(store.add_file(source).id)
    store.close()
    yield ids, contents


def read_task(blobs: list[str], index: int, offset: int, dest: int, length: int, *,
              fuel: int = Limits().fuel) -> Task:
    return Task.create(wasmtime.wat2wasm(READ_WAT), entry="call", blobs=blobs,
                       input=struct.pack("<iqii", index, offset, dest, length), limits=Limits(fuel=fuel))


def test_a_wasm_task_reads_its_blobs(runner: WasmRunner, blobs: tuple[list[str], list[bytes]]) -> None:
    ids, contents = blobs
    expected = b"".join(struct.pack("<QQ", len(c), fnv1a(c)) for c in contents)
    for step in (0, 4096, 1000003):  # 64 KiB reads, small ones, and reads that straddle chunks
        task = Task.create(digest_module(), entry="digest", blobs=ids, input=struct.pack("<I", step))
        result = runner.run(task)
        assert result.status is Status.OK, result.message
        assert result.output == expected
    same = runner.run(Task.create(digest_module(), entry="digest", blobs=ids[:1]))
    assert same.output == result.output[:16]
    assert runner.run(Task.create(digest_module(), entry="digest")).output == b""  # no blobs: count 0


def test_blob_paths_are_the_store_files_in_task_order(node_context: NodeContext,
                                                        blobs: tuple[list[str], list[bytes]]) -> None:
    ids, contents = blobs
    paths = blob_paths(node_context, Task(module_id="a" * 64, blobs=ids[::-1]))
    assert [p.read_bytes() for p in paths] == contents[::-1]
    with pytest.raises(GaiaError, match="is not complete in the store") as missing:
        blob_paths(node_context, Task(module_id="a" * 64, blobs=["0" * 64]))
    assert missing.value.exit_code == 9


def test_reads_are_bounds_checked(runner: WasmRunner, blobs: tuple[list[str], list[bytes]]) -> None:
    ids, contents = blobs
    size = len(contents[0])
    ok = runner.run(read_task(ids, 0, size - 10, 2048, 4096))
    assert ok.status is Status.OK and ok.output == struct.pack("<i", 10)  # short at the end of the blob
    assert runner.run(read_task(ids, 0, size, 2048, 4096)).output == struct.pack("<i", 0)
    assert runner.run(read_task(ids, 1, 0, 2048, 4096)).output == struct.pack("<i", 0)  # the empty blob
    for args, why in [((2, 0, 0, 1), "no blob 2; the task names 2"), ((-1, 0, 0, 1), "no blob -1"),
                      ((0, size + 1, 0, 1), "is outside blob 0"), ((0, -1, 0, 1), "is outside blob 0"),
                      ((0, 0, 65530, 16), "outside the module's memory"),
                      ((0, 0, 16, -1), "outside the module's memory")]:
        result = runner.run(read_task(ids, *args))
        assert result.status is Status.TRAP and why in result.message, (args, result.message)


def test_reads_are_charged_to_fuel(runner: WasmRunner, blobs: tuple[list[str], list[bytes]]) -> None:
    ids, _ = blobs
    small = runner.run(read_task(ids, 0, 0, 0, 8, fuel=100_000))
    large = runner.run(read_task(ids, 0, 0, 0, 65536, fuel=100_000))
    assert small.status is large.status is Status.OK
    assert large.fuel_used - small.fuel_used == (65536 - 8) // 8
    starved = runner.run(read_task(ids, 0, 0, 0, 65536, fuel=5_000))
    assert starved.status is Status.OUT_OF_FUEL, starved.message


def test_a_task_whose_blob_is_not_here_ends_error(runner: WasmRunner) -> None:
    result = runner.run(Task.create(digest_module(), entry="digest", blobs=["0" * 64]))
    assert result.status is Status.ERROR and "is not complete in the store" in result.message


def test_a_blob_gone_before_the_run_opens_it_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(GaiaError, match="cannot open blob gone.*run the task again"):
        with blob_host.opened([tmp_path / "gone"], None):
            pass


def test_modules_importing_what_gaia_blob_lacks_are_invalid(runner: WasmRunner) -> None:
    for wat, why in [('(import "gaia_blob" "write" (func))', "gaia_blob has no function 'write'"),
                     ('(import "gaia_blob" "count" (func (result i64)))', "another type than gaia_blob.h")]:
        module = wasmtime.wat2wasm(f'(module {wat} (memory (export "memory") 1) '
                                   '(func (export "gaia_alloc") (param i32) (result i32) (i32.const 0)))')
        result = runner.run(Task.create(module, entry="x"))
        assert result.status is Status.INVALID and why in result.message, result.message


def test_a_refused_read_is_reported_to_its_own_task_only(runner: WasmRunner,
                                                         blobs: tuple[list[str], list[bytes]]) -> None:
    """wasmtime-py passes a host function's exception through one process-wide variable: with tasks trapping
    on several worker threads at once, one task's gaia_blob error could reach another task. Reads trap
    through host_trap, which keeps each run's own reason (as gaia_tensor's calls do)."""
    ids, _ = blobs
    unreachable = wasmtime.wat2wasm(
        '(module (memory (export "memory") 1) (func (export "gaia_alloc") (param i32) (result i32) i32.const 16)'
        ' (func (export "run") (param i32 i32) (result i64) unreachable))')
    refused = [read_task(ids, 2, i, 0, 1) for i in range(300)]  # "no blob 2", each task its own input
    trapping = [Task.create(unreachable, entry="run", input=i.to_bytes(2, "little")) for i in range(300)]
    tasks = [t for pair in zip(refused, trapping, strict=True) for t in pair]
    for _ in range(2):
        results = runner.run_many(tasks)
        for result in results[0::2]:
            assert result.status is Status.TRAP and "gaia_blob.read: no blob 2" in result.message, result.message
        for result in results[1::2]:
            assert result.status is Status.TRAP and "gaia_blob" not in result.message, result.message
