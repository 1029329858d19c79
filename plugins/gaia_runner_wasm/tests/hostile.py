"""A corpus of hostile and broken modules, each with the status the runner must contain it with."""

from __future__ import annotations

import wasmtime
from attrs import frozen

from gaia_core.model import Limits, Status, Task

#: A GAIA-ABI allocator every hostile GAIA module below embeds (bump from 1024, no growth).
ALLOC = '(memory (export "memory") 1) (func (export "gaia_alloc") (param i32) (result i32) (i32.const 1024))'
SMALL = Limits(fuel=50_000_000, timeout_s=5.0, memory_bytes=4 << 20, max_output_bytes=1 << 20)


@frozen
class Hostile:
    name: str
    module: bytes
    entry: str
    status: Status
    message: str  # a fragment the result's message must contain
    limits: Limits = SMALL
    input: bytes = b""

    def task(self) -> Task:
        return Task.create(self.module, entry=self.entry, input=self.input, limits=self.limits)


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def gaia(body: str) -> bytes:
    return wat(f"(module {ALLOC} {body})")


def wasi(imports: str, body: str) -> bytes:
    return wat(f'(module {imports} (memory (export "memory") 1) {body})')


FD_WRITE = '(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))'
PROC_EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'

CORPUS = [
    Hostile("infinite loop, fuel", gaia('(func (export "run") (param i32 i32) (result i64) (loop (br 0)) (i64.const 0))'),
            "run", Status.OUT_OF_FUEL, "fuel", Limits(fuel=1_000_000, timeout_s=30.0)),
    Hostile("infinite loop, wall clock",
            gaia('(func (export "run") (param i32 i32) (result i64) (loop (br 0)) (i64.const 0))'),
            "run", Status.TIMEOUT, "timeout_s", Limits(fuel=10**15, timeout_s=0.3)),
    Hostile("memory bomb (grow until refused, then trap)", gaia(
        '(func (export "run") (param i32 i32) (result i64)'
        ' (block $done (loop $more (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (br $more)))'
        ' unreachable)'), "run", Status.OUT_OF_MEMORY, "memory_bytes"),
    Hostile("memory bomb (huge initial memory)", wat(
        '(module (memory (export "memory") 1000) (func (export "gaia_alloc") (param i32) (result i32) (i32.const 0))'
        ' (func (export "run") (param i32 i32) (result i64) (i64.const 0)))'),
            "run", Status.OUT_OF_MEMORY, "exceeds memory limits"),
    Hostile("input larger than the memory limit", gaia(
        '(func (export "run") (param i32 i32) (result i64) (i64.const 0))'),
            "run", Status.TRAP, "outside the module's memory", input=b"x" * 100_000),
    Hostile("deep recursion", gaia('(func $r (export "run") (param i32 i32) (result i64) (call $r (i32.const 0) (i32.const 0)))'),
            "run", Status.TRAP, "stack overflow"),
    Hostile("huge output", gaia('(func (export "run") (param i32 i32) (result i64) (i64.const 0x7fffffff))'),
            "run", Status.OUTPUT_TOO_LARGE, "max_output_bytes"),
    Hostile("output outside memory", gaia('(func (export "run") (param i32 i32) (result i64) (i64.const 0x7fff000000000010))'),
            "run", Status.TRAP, "outside the module's memory"),
    Hostile("unknown import", wat(f'(module (import "env" "steal_keys" (func)) {ALLOC}'
                                                ' (func (export "run") (param i32 i32) (result i64) (i64.const 0)))'),
            "run", Status.INVALID, "unknown import env::steal_keys"),
    Hostile("invalid bytes", b"\0asm\x01\0\0\0garbage", "run", Status.INVALID, "invalid WebAssembly module"),
    Hostile("not WebAssembly at all", b"#!/bin/sh\nrm -rf /\n", "run", Status.INVALID, "not a WebAssembly binary"),
    Hostile("trap in start function", gaia('(func $boom unreachable) (start $boom)'
                                           ' (func (export "run") (param i32 i32) (result i64) (i64.const 0))'),
            "run", Status.TRAP, "unreachable"),
    Hostile("giant table", gaia('(table 50000000 funcref) (func (export "run") (param i32 i32) (result i64) (i64.const 0))'),
            "run", Status.OUT_OF_MEMORY, "exceeds table limits"),
    Hostile("too many tables", gaia(' '.join(['(table 1 funcref)'] * 6)
                                    + ' (func (export "run") (param i32 i32) (result i64) (i64.const 0))'),
            "run", Status.OUT_OF_MEMORY, "table count"),
    Hostile("missing export", gaia('(func (export "run") (param i32 i32) (result i64) (i64.const 0))'),
            "steal", Status.INVALID, "no gaia-ABI entry 'steal'"),
    Hostile("entry of the wrong type", gaia('(func (export "run") (param f32) (result i64) (i64.const 0))'),
            "run", Status.INVALID, "no gaia-ABI entry 'run'"),
    Hostile("no known ABI", wat('(module (func (export "run")))'), "run", Status.INVALID, "no known task ABI"),
    Hostile("integer division by zero", gaia(
        '(func (export "run") (param i32 i32) (result i64) (i64.extend_i32_u (i32.div_u (i32.const 1) (local.get 1))))'),
            "run", Status.TRAP, "division by zero"),
    Hostile("WASI command exits with an error", wasi(PROC_EXIT, '(func (export "_start") (call $exit (i32.const 3)))'),
            "_start", Status.TRAP, "exited with code 3"),
    Hostile("WASI stdout flood", wasi(FD_WRITE,
            '(func (export "_start") (local $i i32)'
            ' (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 4096))'
            ' (loop $more (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))'
            '  (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $more (i32.lt_u (local.get $i) (i32.const 1000)))))'),
            "_start", Status.OUTPUT_TOO_LARGE, "max_output_bytes",
            Limits(fuel=50_000_000, timeout_s=5.0, memory_bytes=4 << 20, max_output_bytes=64 << 10)),
]

#: A WASI command that probes each capability and prints four bytes: the errno of
#: fd_prestat_get(3) (fs), the environment variable count (env), the errno of clock_time_get
#: (clock) and of random_get (random).
PROBE = wasi(
    FD_WRITE
    + '(import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))'
    + '(import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))'
    + '(import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))'
    + '(import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))',
    '(func (export "_start")'
    ' (i32.store8 (i32.const 100) (call $prestat (i32.const 3) (i32.const 200)))'
    ' (drop (call $env_sizes (i32.const 208) (i32.const 212)))'
    ' (i32.store8 (i32.const 101) (i32.load (i32.const 208)))'
    ' (i32.store8 (i32.const 102) (call $clock (i32.const 0) (i64.const 1) (i32.const 216)))'
    ' (i32.store8 (i32.const 103) (call $random (i32.const 224) (i32.const 8)))'
    ' (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 4))'
    ' (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))')
