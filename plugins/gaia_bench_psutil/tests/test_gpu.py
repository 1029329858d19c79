"""NVML: the absent path on this machine, and the present path against a fake pynvml."""

from __future__ import annotations

import sys

import pytest
from bench_fakes import fake_nvml

from gaia_bench_psutil import PsutilBenchmark
from gaia_bench_psutil.gpu import Gpus
from gaia_core.roles import NodeContext


def by_name(entries):
    return {e.name: e for e in entries}


def test_no_driver_is_a_clean_no_gpu() -> None:
    gpus = Gpus(fake_nvml(init_error="NVML Shared Library Not Found"))
    (count,) = gpus.facts()
    assert (count.name, count.value, count.source) == ("gpu.count", 0, "reported")
    assert "no GPU" in count.reason and "Shared Library Not Found" in count.reason
    assert gpus.live().power_w is None


def test_no_devices_is_a_clean_no_gpu() -> None:
    (count,) = Gpus(fake_nvml(devices=0)).facts()
    assert count.value == 0 and count.reason == "no GPU: NVML found no devices"


def test_nvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    gpus = Gpus()
    assert gpus.facts()[0].value == 0 and "not installed" in gpus.reason


def test_this_machine_degrades_without_error() -> None:
    facts = by_name(Gpus().facts())
    assert facts["gpu.count"].source == "reported"
    if facts["gpu.count"].value == 0:
        assert facts["gpu.count"].reason.startswith("no GPU")


def test_present_path_reports_every_device() -> None:
    nvml = fake_nvml(devices=2)
    gpus = Gpus(nvml)
    facts = by_name(gpus.facts())
    assert facts["gpu.count"].value == 2
    assert facts["gpu.driver"].value == "550.54.15"
    assert facts["gpu.1.name"].value == "NVIDIA Fake 16GB"
    assert facts["gpu.0.vram_total_bytes"].value == 16 << 30
    assert facts["gpu.0.vram_free_bytes"].value == 12 << 30
    assert facts["gpu.1.power_limit_w"].value == 300.0
    live = gpus.live()
    assert (live.util_percent, live.vram_used_bytes, live.vram_total_bytes, live.power_w) == (
        40.0, 8 << 30, 32 << 30, 240.0)
    gpus.close()
    gpus.close()
    assert nvml.shutdowns == 1


def test_nvml_errors_mid_run_degrade_to_unknown() -> None:
    nvml = fake_nvml(devices=1)
    gpus = Gpus(nvml)
    nvml.broken = {"nvmlDeviceGetPowerUsage", "nvmlDeviceGetPowerManagementLimit", "nvmlSystemGetDriverVersion"}
    facts = by_name(gpus.facts())
    assert facts["gpu.0.power_limit_w"].source == "unknown"
    assert "GPU is lost" in facts["gpu.0.power_limit_w"].reason
    assert facts["gpu.driver"].source == "unknown"
    assert facts["gpu.0.vram_total_bytes"].value == 16 << 30
    live = gpus.live()
    assert live.power_w is None and live.util_percent == 40.0


def test_provider_adds_gpu_power_to_samples(node_context: NodeContext) -> None:
    provider = PsutilBenchmark(node_context, nvml=fake_nvml(devices=1))
    sample = provider.sample()
    assert sample.vram_total_bytes == 16 << 30 and sample.gpu_util_percent == 40.0
    assert sample.power_w is not None and sample.power_w >= 120.0
    provider.gpus.nvml.broken = {"nvmlDeviceGetMemoryInfo", "nvmlDeviceGetUtilizationRates",
                                 "nvmlDeviceGetPowerUsage"}
    degraded = provider.sample()
    assert degraded.vram_total_bytes is None and degraded.gpu_util_percent is None
    provider.close()
