"""NVIDIA GPUs through NVML (``pynvml``), with a clean "no GPU" when there is no driver or device.

Every NVML call may fail mid-run (driver reload, device lost, no permission);
a failure turns the affected figures to ``unknown`` with the reason and never
raises.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from attrs import frozen

from gaia_bench_psutil.facts import describe, entry, unknown
from gaia_core.plugin_api import Measurement


def load_nvml() -> ModuleType:
    """The ``pynvml`` module (ImportError when nvidia-ml-py is not installed)."""
    return importlib.import_module("pynvml")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@frozen
class GpuLive:
    """Live GPU figures summed over devices (utilisation averaged); None where unknown."""

    util_percent: float | None = None
    vram_used_bytes: int | None = None
    vram_total_bytes: int | None = None
    power_w: float | None = None


class Gpus:
    """The NVML devices of this machine, or none with :attr:`reason` saying why."""

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self.reason = ""
        self.handles: list[Any] = []
        self._lock = threading.Lock()
        try:
            self.nvml: ModuleType | None = nvml if nvml is not None else load_nvml()
        except ImportError as exc:
            self.nvml = None
            self.reason = f"no GPU: nvidia-ml-py is not installed ({exc})"
            return
        try:
            self.nvml.nvmlInit()
            count = self.nvml.nvmlDeviceGetCount()
            self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # NVMLError has many subclasses, e.g. LibraryNotFound, DriverNotLoaded
            self.handles = []
            self.reason = f"no GPU: NVML unavailable ({describe(exc)})"
            return
        if not self.handles:
            self.reason = "no GPU: NVML found no devices"

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """One NVML call; None (and the reason kept) when it fails."""
        try:
            with self._lock:
                return fn(*args)
        except Exception as exc:  # NVMLError subclasses are created dynamically
            self.reason = f"NVML call {getattr(fn, '__name__', fn)} failed ({describe(exc)})"
            return None

    def facts(self) -> list[Measurement]:
        """Count, driver, and per device: name, VRAM total/free, power limit."""
        nvml = self.nvml
        if not self.handles or nvml is None:
            return [entry("gpu.count", 0, "", "reported", self.reason)]
        found = [entry("gpu.count", len(self.handles), "", "reported")]
        driver = self._call(nvml.nvmlSystemGetDriverVersion)
        found.append(entry("gpu.driver", _text(driver), "", "reported") if driver is not None
                     else unknown("gpu.driver", self.reason))
        for i, handle in enumerate(self.handles):
            name = self._call(nvml.nvmlDeviceGetName, handle)
            found.append(entry(f"gpu.{i}.name", _text(name), "", "reported") if name is not None
                         else unknown(f"gpu.{i}.name", self.reason))
            mem = self._call(nvml.nvmlDeviceGetMemoryInfo, handle)
            if mem is None:
                found += [unknown(f"gpu.{i}.vram_total_bytes", self.reason, "B"),
                          unknown(f"gpu.{i}.vram_free_bytes", self.reason, "B")]
            else:
                found += [entry(f"gpu.{i}.vram_total_bytes", int(mem.total), "B", "reported"),
                          entry(f"gpu.{i}.vram_free_bytes", int(mem.free), "B", "reported")]
            limit = self._call(nvml.nvmlDeviceGetPowerManagementLimit, handle)
            found.append(entry(f"gpu.{i}.power_limit_w", limit / 1000.0, "W", "reported") if limit is not None
                         else unknown(f"gpu.{i}.power_limit_w", self.reason, "W"))
        return found

    def live(self) -> GpuLive:
        """Utilisation, VRAM and power now; each None when any device could not say."""
        nvml = self.nvml
        if not self.handles or nvml is None:
            return GpuLive()
        utils = [self._call(nvml.nvmlDeviceGetUtilizationRates, h) for h in self.handles]
        mems = [self._call(nvml.nvmlDeviceGetMemoryInfo, h) for h in self.handles]
        powers = [self._call(nvml.nvmlDeviceGetPowerUsage, h) for h in self.handles]
        return GpuLive(
            util_percent=sum(u.gpu for u in utils) / len(utils) if None not in utils else None,
            vram_used_bytes=sum(int(m.used) for m in mems) if None not in mems else None,
            vram_total_bytes=sum(int(m.total) for m in mems) if None not in mems else None,
            power_w=sum(powers) / 1000.0 if None not in powers else None,
        )

    def close(self) -> None:
        """Shut NVML down (idempotent)."""
        if self.handles and self.nvml is not None:
            self.handles = []
            try:
                self.nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - shutting down, nothing left to report
                pass
