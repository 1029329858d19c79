"""The energy model, RAPL counters (readable, wrapped, unreadable) and per-task accounting."""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import pytest
from bench_fakes import write_rapl

from gaia_bench_psutil import EnergyModel, PsutilBenchmark, account
from gaia_bench_psutil.energy import PowerMeter, Rapl
from gaia_bench_psutil.facts import unknown
from gaia_core.config import Config
from gaia_core.model import ResourceSample, Status, TaskResult
from gaia_core.roles import NodeContext

MODEL = EnergyModel(watts_per_core=10.0, cores=4)


def test_model_scales_with_utilisation() -> None:
    assert MODEL.cpu_power_w(0.0) == 0.0
    assert MODEL.cpu_power_w(50.0) == 20.0
    assert MODEL.cpu_power_w(100.0) == 40.0
    assert MODEL.task_energy_j(2.5) == 25.0


def test_account_estimates_from_cpu_time() -> None:
    start = ResourceSample(at=100.0, rss_bytes=10, power_w=5.0, power_source="estimated")
    end = ResourceSample(at=103.0, rss_bytes=30, power_w=40.0, power_source="estimated")
    cost = account(start, end, cpu_s=2.0, model=MODEL, peak_memory_bytes=20)
    assert (cost.cpu_s, cost.wall_s, cost.peak_memory_bytes) == (2.0, 3.0, 30)
    assert (cost.energy_j, cost.energy_source) == (20.0, "estimated")


def test_account_attributes_measured_energy_by_cpu_share() -> None:
    start = ResourceSample(at=0.0, power_w=30.0, power_source="measured")
    end = ResourceSample(at=2.0, power_w=50.0, power_source="measured")
    cost = account(start, end, cpu_s=2.0, model=MODEL)  # one of four cores for the whole 2 s
    assert cost.energy_source == "measured"
    assert cost.energy_j == pytest.approx(40.0 * 2.0 * 0.25)


def test_account_never_goes_negative() -> None:
    cost = account(ResourceSample(at=5.0), ResourceSample(at=4.0), cpu_s=-1.0, model=MODEL)
    assert cost.wall_s == 0.0 and cost.cpu_s == 0.0 and cost.energy_j == 0.0


def test_task_account_attaches_to_a_result() -> None:
    result = TaskResult(task_id="a" * 64, status=Status.OK, peak_memory_bytes=500)
    cost = account(ResourceSample(at=0.0, rss_bytes=100), ResourceSample(at=1.0), cpu_s=1.0, model=MODEL)
    attached = cost.apply(result)
    assert (attached.cpu_s, attached.peak_memory_bytes, attached.energy_j, attached.energy_source) == (
        1.0, 500, 10.0, "estimated")


def test_rapl_reads_and_handles_wrap(tmp_path: Path) -> None:
    (counter,) = write_rapl(tmp_path, [1_000_000], wrap=2_000_000)
    rapl = Rapl(tmp_path)
    assert rapl.available and rapl.reason == ""
    before = rapl.read_uj()
    counter.write_text("500000\n")  # wrapped past 2 J
    assert rapl.delta_j(before, rapl.read_uj()) == pytest.approx(1.5)


@pytest.mark.parametrize("breakage", ["missing", "directory", "garbage", "no_zones"])
def test_unreadable_rapl_degrades_with_a_reason(tmp_path: Path, breakage: str) -> None:
    (counter,) = write_rapl(tmp_path, [1])
    if breakage == "missing":
        counter.unlink()
    elif breakage == "directory":  # reading it raises IsADirectoryError, as EACCES would
        counter.unlink()
        counter.mkdir()
    elif breakage == "garbage":
        counter.write_text("not a number")
    else:
        (tmp_path / "intel-rapl:0").rename(tmp_path / "other")
    rapl = Rapl(tmp_path)
    assert not rapl.available and rapl.read_uj() is None and rapl.reason
    assert PowerMeter(rapl).power_w() is None


def test_power_meter_reports_rapl_power_and_stops_when_counter_breaks(tmp_path: Path) -> None:
    (counter,) = write_rapl(tmp_path, [0])
    meter = PowerMeter(Rapl(tmp_path))
    time.sleep(0.05)
    counter.write_text("1000000\n")  # 1 J
    assert meter.power_w() > 0
    counter.write_text("garbage")
    assert meter.power_w() is None and "RAPL read failed" in meter.rapl.reason
    assert meter.power_w() is None


def test_provider_uses_rapl_when_readable(node_context: NodeContext, tmp_path: Path) -> None:
    (counter,) = write_rapl(tmp_path / "powercap", [0])
    config = Config(extra={"bench-psutil": {"powercap_root": str(tmp_path / "powercap")}})
    provider = PsutilBenchmark(attrs.evolve(node_context, config=config))
    counter.write_text("5000000\n")
    sample = provider.sample()
    assert sample.power_source == "measured" and sample.power_w > 0
    with provider.meter() as cost:
        counter.write_text("9000000\n")
    assert cost[0].energy_source == "measured"
    provider.close()


def test_provider_estimates_without_rapl(psutil_benchmark: PsutilBenchmark) -> None:
    with psutil_benchmark.meter() as cost:
        sum(i * i for i in range(200_000))
    (spent,) = cost
    assert spent.energy_source == "estimated" and spent.cpu_s > 0
    assert spent.energy_j == pytest.approx(spent.cpu_s * psutil_benchmark.model.watts_per_core)
    assert spent.peak_memory_bytes > 0


def test_gflops_per_watt_is_unknown_when_the_compute_score_is(psutil_benchmark: PsutilBenchmark) -> None:
    scores = [unknown("cpu.gflops_all", "the compute kernels did not run")]
    power, per_watt, _ = psutil_benchmark._power_entries(None, None, 0.0, scores)
    assert power.value is not None
    assert per_watt.value is None and per_watt.source == "unknown"
    assert per_watt.reason == "cpu.gflops_all was not measured"


def test_meter_reads_process_memory_once_per_sampling_interval(psutil_benchmark: PsutilBenchmark,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = psutil_benchmark._rss

    def counted() -> int:
        reads.append(1)
        return real()

    monkeypatch.setattr(psutil_benchmark, "_rss", counted)
    for _ in range(50):  # 50 tasks well inside one 1 s interval: one /proc read, not 50
        with psutil_benchmark.meter() as cost:
            pass
        assert cost[0].peak_memory_bytes > 0
    assert len(reads) == 1
    psutil_benchmark._rss_read = (time.time() - psutil_benchmark.settings.sample_interval_s, 1)
    with psutil_benchmark.meter() as cost:  # the reading is an interval old: read again
        pass
    assert len(reads) == 2 and cost[0].peak_memory_bytes > 1
