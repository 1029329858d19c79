"""Hook implementations of gaia-runner-wasm: the ``wasm`` runner, its admission check and the demo's workloads."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import wasmtime

from gaia_core.plugin_api import Envelope, NodeContext, RejectedError, RunnerSpec, Task, hookimpl
from gaia_runner_wasm.cnn import DigitsCnn
from gaia_runner_wasm.runner import WASM_MAGIC, WasmRunner, holds_module
from gaia_runner_wasm.sandbox import engine_config
from gaia_runner_wasm.settings import Metering
from gaia_runner_wasm.workloads import DigitsData, DigitsMlp


@hookimpl
def gaia_runners() -> Iterator[RunnerSpec]:
    """Register the sandboxed WebAssembly runner for tasks of kind ``wasm``."""
    yield RunnerSpec(name="wasm", task_kinds=("wasm",), factory=WasmRunner)


@hookimpl
def gaia_workloads() -> Iterator[DigitsData]:
    """Offer ``digits-mlp`` and ``digits-cnn``, digits classifiers trained by federated SGD (``gaia demo``'s jobs)."""
    yield DigitsMlp()
    yield DigitsCnn()


@functools.cache
def _validator() -> wasmtime.Engine:
    return wasmtime.Engine(engine_config(1 << 20, Metering()))


#: Ids of modules already found valid (admission checked that the bytes hash to the id); bounded.
_valid_ids: set[str] = set()
_VALID_IDS_MAX = 4096


def _check_module(module_id: str, module: bytes) -> None:
    """Validate a module's bytes, once per module id."""
    if module_id in _valid_ids:
        return
    if not module.startswith(WASM_MAGIC):
        raise RejectedError("bad_module", "module is not a WebAssembly binary (no \\0asm header)",
                            hint="send a compiled .wasm file, not WAT text or another format")
    try:
        wasmtime.Module.validate(_validator(), module)
    except wasmtime.WasmtimeError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), "invalid")
        raise RejectedError("bad_module", f"invalid WebAssembly module: {first}",
                            hint="rebuild the module; check it with `wasm-tools validate`") from None
    if len(_valid_ids) >= _VALID_IDS_MAX:
        _valid_ids.clear()
    _valid_ids.add(module_id)


@hookimpl
def gaia_validate_task(task: Task, envelope: Envelope | None, context: NodeContext) -> None:
    """Refuse ``wasm`` tasks whose module is not valid WebAssembly, or is absent and unknown here."""
    if task.kind != "wasm":
        return
    if task.module is None:
        if not holds_module(context, task.module_id):
            raise RejectedError("bad_module", f"module {task.module_id[:16]}… is not cached on this node",
                                hint="send the task with its module bytes")
        return
    _check_module(task.module_id, task.module)
