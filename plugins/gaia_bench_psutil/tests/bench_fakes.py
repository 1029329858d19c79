"""Stand-ins for a GPU driver and a RAPL tree (tests only)."""

from __future__ import annotations

import types
from pathlib import Path


class NVMLError(Exception):
    """What the fake NVML raises, as pynvml's NVMLError subclasses do."""


def fake_nvml(devices: int = 2, *, init_error: str | None = None) -> types.ModuleType:
    """A stand-in for the ``pynvml`` module: ``devices`` GPUs of 16 GiB, 300 W limit, 40 % busy.

    Set ``module.broken = {"nvmlDeviceGetPowerUsage", ...}`` to make calls fail mid-run.
    """
    nvml = types.ModuleType("pynvml")
    nvml.broken = set()
    nvml.shutdowns = 0

    def call(name: str, value: object):
        def fn(*_args: object) -> object:
            if name in nvml.broken:
                raise NVMLError(f"{name}: GPU is lost")
            return value
        fn.__name__ = name
        return fn

    def init() -> None:
        if init_error:
            raise NVMLError(init_error)

    def shutdown() -> None:
        nvml.shutdowns += 1

    nvml.nvmlInit = init
    nvml.nvmlShutdown = shutdown
    nvml.nvmlDeviceGetCount = call("nvmlDeviceGetCount", devices)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"handle-{i}"
    nvml.nvmlSystemGetDriverVersion = call("nvmlSystemGetDriverVersion", b"550.54.15")
    nvml.nvmlDeviceGetName = call("nvmlDeviceGetName", "NVIDIA Fake 16GB")
    nvml.nvmlDeviceGetMemoryInfo = call("nvmlDeviceGetMemoryInfo",
                                        types.SimpleNamespace(total=16 << 30, free=12 << 30, used=4 << 30))
    nvml.nvmlDeviceGetPowerManagementLimit = call("nvmlDeviceGetPowerManagementLimit", 300_000)
    nvml.nvmlDeviceGetUtilizationRates = call("nvmlDeviceGetUtilizationRates",
                                              types.SimpleNamespace(gpu=40, memory=10))
    nvml.nvmlDeviceGetPowerUsage = call("nvmlDeviceGetPowerUsage", 120_000)
    return nvml


def write_rapl(root: Path, energies_uj: list[int], wrap: int = 262_143_328_850) -> list[Path]:
    """A fake powercap tree with one ``intel-rapl:N`` package zone per counter; returns the counter files."""
    files = []
    for i, uj in enumerate(energies_uj):
        zone = root / f"intel-rapl:{i}"
        zone.mkdir(parents=True, exist_ok=True)
        (zone / "max_energy_range_uj").write_text(f"{wrap}\n")
        (zone / "energy_uj").write_text(f"{uj}\n")
        (zone / "intel-rapl:0:0").mkdir(exist_ok=True)  # a sub-zone (core), not counted
        files.append(zone / "energy_uj")
    return files
