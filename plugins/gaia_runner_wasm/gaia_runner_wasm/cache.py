"""Compiled modules by content id: an LRU in memory and serialized artifacts on disk.

An artifact file is ``<module_id>.<engine fingerprint>.cwasm`` holding a magic tag, the SHA-256
of the artifact and the artifact. Loading checks both before handing the bytes to wasmtime
(deserializing unchecked bytes would be unsafe); a corrupt or foreign file is deleted and the
module is compiled again from its bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import wasmtime
from attrs import define, field

from gaia_runner_wasm.abi import Shape, inspect

MAGIC = b"GAIACWASM1\n"
_DIGEST = 32


@define
class Compiled:
    """A compiled module, its detected shape, and its pre-linked instances by linker key."""

    module: wasmtime.Module
    shape: Shape
    pres: dict[object, wasmtime.InstancePre] = field(factory=dict)


class ModuleCache:
    """Thread-safe cache of compiled modules for one engine."""

    def __init__(self, engine: wasmtime.Engine, directory: Path | None, capacity: int, tag: str,
                 log: logging.Logger | None = None) -> None:
        self.engine = engine
        self.directory = directory
        self.capacity = capacity
        self.tag = tag
        self.compiles = 0  # modules compiled from bytes since start (for tests and stats)
        self._log = log or logging.getLogger("gaia.runner_wasm")
        self._memory: OrderedDict[str, Compiled] = OrderedDict()
        self._lock = threading.Lock()
        self._compile_lock = threading.Lock()

    def path(self, module_id: str) -> Path | None:
        """Where the artifact of ``module_id`` lives on disk (None without a disk cache)."""
        return None if self.directory is None else self.directory / f"{module_id}.{self.tag}.cwasm"

    def get(self, module_id: str) -> Compiled | None:
        """The compiled module from memory or disk, or None when this node has never compiled it."""
        with self._lock:
            found = self._memory.get(module_id)
            if found is not None:
                self._memory.move_to_end(module_id)
                return found
        with self._compile_lock:
            return self._remember(module_id, self._load(module_id))

    def get_or_compile(self, module_id: str, wasm: bytes) -> Compiled:
        """The compiled module, compiling ``wasm`` once if needed (wasmtime errors propagate)."""
        found = self.get(module_id)
        if found is not None:
            return found
        with self._compile_lock:
            with self._lock:
                found = self._memory.get(module_id)
            if found is not None:
                return found
            module = wasmtime.Module(self.engine, wasm)
            self.compiles += 1
            compiled = Compiled(module, inspect(module))  # AbiError before anything is kept
            self._store(module_id, module)
            return self._keep(module_id, compiled)

    def _remember(self, module_id: str, module: wasmtime.Module | None) -> Compiled | None:
        return None if module is None else self._keep(module_id, Compiled(module, inspect(module)))

    def _keep(self, module_id: str, compiled: Compiled) -> Compiled:
        with self._lock:
            self._memory[module_id] = compiled
            while len(self._memory) > self.capacity:
                self._memory.popitem(last=False)
        return compiled

    def _load(self, module_id: str) -> wasmtime.Module | None:
        path = self.path(module_id)
        if path is None or not path.exists():
            return None
        try:
            data = path.read_bytes()
            body = data[len(MAGIC) + _DIGEST:]
            if not data.startswith(MAGIC) or data[len(MAGIC):len(MAGIC) + _DIGEST] != hashlib.sha256(body).digest():
                raise ValueError("checksum mismatch")
            return wasmtime.Module.deserialize(self.engine, body)
        except (OSError, ValueError, wasmtime.WasmtimeError) as exc:
            self._log.warning("corrupt compiled-module cache entry %s (%s): removed, will recompile", path, exc)
            path.unlink(missing_ok=True)
            return None

    def _store(self, module_id: str, module: wasmtime.Module) -> None:
        path = self.path(module_id)
        if path is None:
            return
        body = bytes(module.serialize())
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(MAGIC + hashlib.sha256(body).digest() + body)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self._log.warning("cannot write compiled-module cache entry %s: %s", path, exc)

    def clear_memory(self) -> None:
        """Drop every module held in memory (disk artifacts stay)."""
        with self._lock:
            self._memory.clear()


def has_artifact(directory: Path, module_id: str) -> bool:
    """True when some engine of this node has compiled ``module_id`` to ``directory``."""
    return any(directory.glob(f"{module_id}.*.cwasm"))
