"""The WebAssembly runner: one task in, one TaskResult out, whatever the module does.

Every task gets a fresh wasmtime Store with its own limits (memory, tables, instances), fuel and
an epoch deadline; the engine is shared, and compiled modules come from :class:`ModuleCache`.
wasmtime releases the GIL while WebAssembly runs, so tasks run in parallel on worker threads.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import errno
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path

import wasmtime
from attrs import define, field

from gaia_core.plugin_api import GaiaError, NodeContext, Status, Task, TaskResult, blob_paths, content_id
from gaia_runner_wasm import blob_host, host_trap, sandbox, tensor_host
from gaia_runner_wasm.abi import ALLOC_EXPORT, FAIL_LENGTH, MEMORY_EXPORT, Abi, AbiError
from gaia_runner_wasm.cache import Compiled, ModuleCache, has_artifact
from gaia_runner_wasm.settings import Metering, RunnerSettings

WASM_MAGIC = b"\0asm"
#: The runners of this process that are open: admission asks them which modules they hold.
_open_runners: weakref.WeakSet[WasmRunner] = weakref.WeakSet()
#: Bytes of a module's stderr kept for the message of a failed task.
STDERR_TAIL = 4096


@define
class _Outcome:
    """What one run produced, before it becomes a TaskResult."""

    status: Status
    message: str = ""
    output: bytes = b""
    peak_memory: int = 0


class _Failed(Exception):
    """Ends a run early with a status and message."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@define
class _Capture:
    """A bounded sink for a module's stdout or stderr."""

    limit: int
    chunks: list[bytes] = field(factory=list)
    size: int = 0
    overflow: bool = False

    def write(self, data: bytes) -> int:
        if self.size + len(data) > self.limit:
            self.overflow = True
            return -errno.EFBIG
        self.chunks.append(data)
        self.size += len(data)
        return len(data)

    def value(self) -> bytes:
        return b"".join(self.chunks)


class WasmRunner:
    """Runs tasks of kind ``wasm``: the GAIA ABI or WASI commands, sandboxed and metered.

    :param context: the node's context (config, home, identity).
    :param metering: leave both on in a node; benchmarks turn them off to measure their cost.
    """

    def __init__(self, context: NodeContext, *, metering: Metering = Metering()) -> None:
        self.context = context
        self.settings = RunnerSettings.from_config(context.config)
        self.metering = metering
        self.stack_bytes = context.config.offer.stack_bytes
        self.engine = wasmtime.Engine(sandbox.engine_config(self.stack_bytes, metering))
        directory = context.home.cache_dir / "wasm" if self.settings.disk_cache else None
        self.cache = ModuleCache(self.engine, directory, self.settings.cache_modules,
                                 sandbox.fingerprint(self.stack_bytes, metering), context.log)
        self.ticker = sandbox.EpochTicker(self.engine, self.settings.tick_ms / 1000) if metering.epochs else None
        self._node_id = context.identity.node_id if context.identity is not None else ""
        self._bare = wasmtime.Linker(self.engine)
        tensor_host.define(self._bare)
        blob_host.define(self._bare)
        self._linkers: dict[frozenset[str], wasmtime.Linker] = {}
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._tmp: Path | None = None
        self._closed = False
        _open_runners.add(self)

    # ----------------------------------------------------------------- public API

    def run(self, task: Task) -> TaskResult:
        """Run ``task`` in this thread; every failure is a TaskResult, never an exception."""
        if self._closed:  # the epoch ticker is stopped: no timeout could be enforced
            return TaskResult(task_id=task.id, status=Status.ERROR, node_id=self._node_id,
                              message="the runner is closed: this node is stopping")
        wall, cpu = time.perf_counter(), time.thread_time()
        fuel_used = 0
        try:
            outcome, fuel_used = self._run(task)
        except _Failed as exc:
            outcome = _Outcome(exc.status, exc.message)
        except Exception as exc:  # a runner bug must not take the node down
            self.context.log.exception("wasm runner failed on task %s", task.id)
            outcome = _Outcome(Status.ERROR, f"runner error: {type(exc).__name__}: {exc}")
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu  # the run itself, hashing aside
        ok = outcome.status is Status.OK
        return TaskResult(
            task_id=task.id, status=outcome.status, node_id=self._node_id, output=outcome.output if ok else b"",
            output_id=content_id(outcome.output) if ok else "", message=outcome.message, fuel_used=fuel_used,
            wall_s=wall, cpu_s=cpu, peak_memory_bytes=outcome.peak_memory,
        )

    def submit(self, task: Task) -> concurrent.futures.Future[TaskResult]:
        """Run ``task`` on one of the runner's worker threads (as many as the node offers cores)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("runner is closed")
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.settings.worker_count(self.context.config), thread_name_prefix="gaia-wasm")
            return self._pool.submit(self.run, task)

    def run_many(self, tasks: Iterable[Task]) -> list[TaskResult]:
        """Run ``tasks`` on the worker threads; results in the order of ``tasks``."""
        return [future.result() for future in [self.submit(t) for t in tasks]]

    def knows(self, module_id: str) -> bool:
        """True when the module is compiled in this node's cache (tasks may omit its bytes)."""
        return self.cache.get(module_id) is not None

    def close(self) -> None:
        """Stop the workers and the epoch ticker and drop the caches held in memory; idempotent."""
        _open_runners.discard(self)
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self.ticker is not None:
            self.ticker.stop()
        self.cache.clear_memory()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # ----------------------------------------------------------------- one run

    def _run(self, task: Task) -> tuple[_Outcome, int]:
        compiled = self._compiled(task)
        try:
            compiled.shape.check_entry(task.entry)
        except AbiError as exc:
            raise _Failed(Status.INVALID, str(exc)) from None
        limits = task.limits
        try:
            blobs = blob_paths(self.context, task)
        except GaiaError as exc:
            raise _Failed(Status.ERROR, str(exc)) from None
        store = wasmtime.Store(self.engine)
        try:
            store.set_limits(memory_size=limits.memory_bytes, table_elements=limits.max_table_elements,
                             instances=limits.max_instances, tables=limits.max_tables, memories=1)
            if self.metering.fuel:
                store.set_fuel(limits.fuel)
            if self.ticker is not None:
                store.set_epoch_deadline(self.ticker.ticks_for(limits.timeout_s))
            try:
                metered = store if self.metering.fuel else None
                with host_trap.watching(), tensor_host.metered(metered), blob_host.opened(blobs, metered):
                    outcome = self._execute(task, compiled, store)
            except _Failed as exc:  # the task ran (and used fuel) before it failed
                outcome = _Outcome(exc.status, exc.message)
            except GaiaError as exc:  # a blob gone before it could be opened
                outcome = _Outcome(Status.ERROR, str(exc))
            fuel_used = limits.fuel - store.get_fuel() if self.metering.fuel else 0
            return outcome, fuel_used
        finally:
            store.close()

    def _compiled(self, task: Task) -> Compiled:
        if task.module is None:
            found = self.cache.get(task.module_id)
            if found is None:
                raise _Failed(Status.INVALID, f"module {task.module_id[:16]}… is not in this node's cache; "
                              "send the task with its module bytes")
            return found
        limit = self.context.config.admission.max_module_bytes
        if len(task.module) > limit:
            raise _Failed(Status.INVALID, f"module is {len(task.module)} bytes; this node takes at most {limit} "
                          "([admission] max_module_bytes)")
        if not task.module.startswith(WASM_MAGIC):
            raise _Failed(Status.INVALID, "module is not a WebAssembly binary (no \\0asm header)")
        found = self.cache.get(task.module_id)
        if found is not None:
            return found
        if content_id(task.module) != task.module_id:
            raise _Failed(Status.INVALID, "module bytes do not match the task's module_id")
        try:
            return self.cache.get_or_compile(task.module_id, task.module)
        except AbiError as exc:
            raise _Failed(Status.INVALID, str(exc)) from None
        except wasmtime.WasmtimeError as exc:
            raise _Failed(Status.INVALID, f"invalid WebAssembly module: {_first_line(exc)}") from None

    def _execute(self, task: Task, compiled: Compiled, store: wasmtime.Store) -> _Outcome:
        shape = compiled.shape
        stdout = _Capture(task.limits.max_output_bytes)
        stderr = _Capture(STDERR_TAIL)
        run_dir = None
        try:
            capabilities = sandbox.granted(task.limits.capabilities, self.context.config.offer.capabilities)
            if shape.uses_wasi:
                stdin = scratch = None
                if (shape.abi is Abi.WASI and task.input) or "fs" in capabilities:
                    run_dir = Path(tempfile.mkdtemp(dir=self._tmpdir()))
                    if shape.abi is Abi.WASI and task.input:
                        stdin = run_dir / "stdin"
                        stdin.write_bytes(task.input)
                    if "fs" in capabilities:
                        scratch = run_dir / "scratch"
                        scratch.mkdir()
                store.set_wasi(sandbox.wasi_config(capabilities=capabilities, stdin=stdin, scratch=scratch,
                                                   env_names=self.settings.env, stdout=stdout.write,
                                                   stderr=stderr.write))
            memory = None
            try:
                instance = self._pre(compiled, capabilities if shape.uses_wasi else None).instantiate(store)
                exports = instance.exports(store)
                memory = exports.get(MEMORY_EXPORT)
                if shape.abi is Abi.GAIA:
                    output = self._call_gaia(task, exports, memory, store)
                else:
                    self._call_wasi(_func(exports, task.entry), store)
                    output = stdout.value()
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                return self._failure(exc, task, store, memory, stdout, stderr)
            peak = memory.data_len(store) if isinstance(memory, wasmtime.Memory) else 0
            if stdout.overflow or len(output) > task.limits.max_output_bytes:
                return _Outcome(Status.OUTPUT_TOO_LARGE, f"output exceeds max_output_bytes="
                                f"{task.limits.max_output_bytes}", peak_memory=peak)
            return _Outcome(Status.OK, output=output, peak_memory=peak)
        finally:
            if run_dir is not None:
                shutil.rmtree(run_dir, ignore_errors=True)

    def _call_gaia(self, task: Task, exports: Mapping[str, object], memory: object,
                   store: wasmtime.Store) -> bytes:
        if not isinstance(memory, wasmtime.Memory):
            raise _Failed(Status.INVALID, f"export {MEMORY_EXPORT!r} is not a memory")
        size = len(task.input)
        ptr = _func(exports, ALLOC_EXPORT)(store, size) & 0xFFFFFFFF
        if ptr == 0 and size:
            raise _Failed(Status.OUT_OF_MEMORY, f"{ALLOC_EXPORT}({size}) found no room for the input within "
                          f"memory_bytes={task.limits.memory_bytes}")
        _write(memory, store, ptr, task.input)
        packed = _func(exports, task.entry)(store, ptr, size) & 0xFFFFFFFFFFFFFFFF
        out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
        if out_len == FAIL_LENGTH:
            length = int.from_bytes(_read(memory, store, out_ptr, 4), "little")
            text = _read(memory, store, out_ptr + 4, min(length, STDERR_TAIL)).decode("utf-8", "replace")
            raise _Failed(Status.INVALID, f"module refused its input: {text}")
        if out_len > task.limits.max_output_bytes:
            raise _Failed(Status.OUTPUT_TOO_LARGE, f"output of {out_len} bytes exceeds max_output_bytes="
                          f"{task.limits.max_output_bytes}")
        return _read(memory, store, out_ptr, out_len)

    @staticmethod
    def _call_wasi(entry: wasmtime.Func, store: wasmtime.Store) -> None:
        try:
            entry(store)
        except wasmtime.ExitTrap as exc:
            if exc.code != 0:
                raise _Failed(Status.TRAP, f"WASI command exited with code {exc.code}") from None

    def _failure(self, exc: Exception, task: Task, store: wasmtime.Store, memory: object,
                 stdout: _Capture, stderr: _Capture) -> _Outcome:
        limits = task.limits
        peak = memory.data_len(store) if isinstance(memory, wasmtime.Memory) else 0
        if stdout.overflow:
            return _Outcome(Status.OUTPUT_TOO_LARGE, f"output exceeds max_output_bytes={limits.max_output_bytes}",
                            peak_memory=peak)
        tail = stderr.value().decode("utf-8", "replace").strip()
        suffix = f"; stderr: {tail[-500:]}" if tail else ""
        # this run's own host-call trap, whatever exception wasmtime-py delivered (host_trap.trap_reason)
        reason = host_trap.trap_reason(exc)
        if reason is not None or isinstance(exc, wasmtime.Trap):
            code = exc.trap_code if reason is None and isinstance(exc, wasmtime.Trap) else None
            # a gaia_tensor call that does not fit the fuel left empties it, then traps without a code
            if code is wasmtime.TrapCode.OUT_OF_FUEL or (self.metering.fuel and store.get_fuel() == 0):
                return _Outcome(Status.OUT_OF_FUEL, f"used all {limits.fuel} fuel", peak_memory=peak)
            if code is wasmtime.TrapCode.INTERRUPT:
                return _Outcome(Status.TIMEOUT, f"ran past timeout_s={limits.timeout_s:g}", peak_memory=peak)
            if code is wasmtime.TrapCode.STACK_OVERFLOW:
                return _Outcome(Status.TRAP, f"wasm trap: stack overflow (stack limit {self.stack_bytes} "
                                "bytes)" + suffix, peak_memory=peak)
            what = code.name.lower().replace("_", " ") if code is not None else reason or _first_line(exc)
            if peak + 65536 > limits.memory_bytes:
                return _Outcome(Status.OUT_OF_MEMORY, f"reached memory_bytes={limits.memory_bytes}, then "
                                f"trapped ({what})" + suffix, peak_memory=peak)
            return _Outcome(Status.TRAP, f"wasm trap: {what}" + suffix, peak_memory=peak)
        text = _first_line(exc)
        if "exceeds memory limits" in text or "exceeds table limits" in text or "resource limit" in text:
            return _Outcome(Status.OUT_OF_MEMORY, f"{text} (memory_bytes={limits.memory_bytes}, "
                            f"max_table_elements={limits.max_table_elements}, max_tables={limits.max_tables}, "
                            f"max_instances={limits.max_instances})", peak_memory=peak)
        if "unknown import" in text:
            return _Outcome(Status.INVALID, text)
        return _Outcome(Status.TRAP, text + suffix, peak_memory=peak)

    # ----------------------------------------------------------------- helpers

    def _pre(self, compiled: Compiled, capabilities: frozenset[str] | None) -> wasmtime.InstancePre:
        pre = compiled.pres.get(capabilities)
        if pre is None:
            with self._lock:
                if capabilities is None:
                    linker = self._bare
                else:
                    cached = self._linkers.get(capabilities)
                    if cached is None:
                        cached = self._linkers[capabilities] = sandbox.wasi_linker(self.engine, capabilities)
                        tensor_host.define(cached)
                        blob_host.define(cached)
                    linker = cached
            pre = compiled.pres[capabilities] = linker.instantiate_pre(compiled.module)
        return pre

    def _tmpdir(self) -> Path:
        with self._lock:
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="gaia-wasm-"))
            return self._tmp


def _func(exports: Mapping[str, object], name: str) -> wasmtime.Func:
    """The exported function ``name``; INVALID when the export is something else."""
    func = exports[name]
    if not isinstance(func, wasmtime.Func):
        raise _Failed(Status.INVALID, f"export {name!r} is not a function")
    return func


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _write(memory: wasmtime.Memory, store: wasmtime.Store, ptr: int, data: bytes) -> None:
    if ptr + len(data) > memory.data_len(store):
        raise _Failed(Status.TRAP, f"{ALLOC_EXPORT} returned a buffer outside the module's memory")
    if data:
        ctypes.memmove(ctypes.addressof(memory.data_ptr(store).contents) + ptr, data, len(data))


def _read(memory: wasmtime.Memory, store: wasmtime.Store, ptr: int, size: int) -> bytes:
    if ptr + size > memory.data_len(store):
        raise _Failed(Status.TRAP, "entry returned an output outside the module's memory")
    return ctypes.string_at(ctypes.addressof(memory.data_ptr(store).contents) + ptr, size)


def holds_module(context: NodeContext, module_id: str) -> bool:
    """True when an open runner of the node ``context`` belongs to holds ``module_id`` compiled.

    It may be held in memory only (``[runner_wasm] disk_cache = false``) or on disk; without an open
    runner (a command outside the node) only the disk cache is looked at.
    """
    runners = [runner for runner in list(_open_runners) if runner.context.home == context.home]
    if runners:
        return any(runner.knows(module_id) for runner in runners)
    return has_artifact(context.home.cache_dir / "wasm", module_id)
