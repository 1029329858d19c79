"""Locked-down machines and bad config: figures become unknown with a reason, never a crash."""

from __future__ import annotations

import attrs
import psutil
import pytest

from gaia_bench_psutil import PsutilBenchmark, Settings, cpu, disk, memory
from gaia_core.config import Config
from gaia_core.errors import ConfigError
from gaia_core.roles import NodeContext


def deny(*_args: object, **_kwargs: object) -> object:
    raise psutil.AccessDenied(msg="permission denied")


def fail_os(*_args: object, **_kwargs: object) -> object:
    raise PermissionError(13, "Permission denied", "/proc/meminfo")


def test_unreadable_proc_and_sys_give_unknown_figures(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(psutil, "cpu_freq", deny)
    monkeypatch.setattr(psutil, "virtual_memory", fail_os)
    monkeypatch.setattr(psutil, "disk_usage", fail_os)
    entries = {e.name: e for e in [*cpu.facts(), *memory.facts(), *disk.facts(tmp_path / "cache")]}
    for name in ("cpu.freq_mhz", "ram.total_bytes", "ram.available_bytes", "disk.cache_free_bytes"):
        assert entries[name].source == "unknown" and entries[name].value is None
        assert entries[name].reason, name
    assert "AccessDenied" in entries["cpu.freq_mhz"].reason
    assert "Permission denied" in entries["ram.total_bytes"].reason
    assert entries["cpu.cores_logical"].value >= 1


def test_unreadable_proc_gives_unknown_samples(monkeypatch: pytest.MonkeyPatch,
                                               psutil_benchmark: PsutilBenchmark) -> None:
    monkeypatch.setattr(psutil, "cpu_times", fail_os)
    monkeypatch.setattr(psutil, "virtual_memory", fail_os)
    monkeypatch.setattr(psutil_benchmark.process, "memory_info", deny)
    sample = psutil_benchmark.sample()
    assert sample.cpu_percent is None and sample.ram_total_bytes is None and sample.rss_bytes is None
    assert sample.power_w is None and sample.power_source == "unknown"


def test_cpu_model_falls_back_when_cpuinfo_is_missing(tmp_path) -> None:
    assert cpu.model_name(tmp_path / "absent")


def test_settings_read_and_validate() -> None:
    settings = Settings.from_mapping({"cpu_tdp_w": 120, "sample_interval_s": 0.5})
    assert settings.per_core_w(4) == 30.0
    assert Settings.from_mapping({"watts_per_core": 7.5}).per_core_w(64) == 7.5
    with pytest.raises(ConfigError, match="unknown key"):
        Settings.from_mapping({"tdp": 1})
    with pytest.raises(ConfigError, match="cache_max_age_s"):
        Settings.from_mapping({"cache_max_age_s": -1})
    with pytest.raises(ConfigError, match=r"\[bench-psutil\]"):
        Settings.from_mapping({"cpu_tdp_w": "lots"})


def test_provider_honours_offered_cores(node_context: NodeContext) -> None:
    config = attrs.evolve(node_context.config, node=attrs.evolve(node_context.config.node, cores=1))
    provider = PsutilBenchmark(attrs.evolve(node_context, config=config))
    assert provider.cores == 1
    provider.close()


def test_bad_config_is_a_config_error(node_context: NodeContext) -> None:
    config = Config(extra={"bench-psutil": {"sample_interval_s": 0}})
    with pytest.raises(ConfigError):
        PsutilBenchmark(attrs.evolve(node_context, config=config))
