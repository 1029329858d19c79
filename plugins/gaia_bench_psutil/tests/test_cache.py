"""The report cache: used while fresh, re-measured when stale, thinner, corrupt or refreshed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gaia_bench_psutil import PsutilBenchmark
from gaia_bench_psutil.cache import ReportCache
from gaia_core import codec
from gaia_core.model import BenchmarkReport, Measurement

REPORT = BenchmarkReport((Measurement("cpu.gflops_1core", 9.5, "GFLOP/s", provider="psutil"),))


def test_fresh_report_is_reused(tmp_path: Path) -> None:
    cache = ReportCache(tmp_path / "c.json", max_age_s=60)
    cache.save(REPORT, quick=False)
    assert cache.load(quick=False) == REPORT
    assert cache.load(quick=True) == REPORT  # a full report serves a quick request


def test_quick_report_does_not_serve_a_full_request(tmp_path: Path) -> None:
    cache = ReportCache(tmp_path / "c.json", max_age_s=60)
    cache.save(REPORT, quick=True)
    assert cache.load(quick=True) == REPORT
    assert cache.load(quick=False) is None and "quick" in cache.reason


def test_stale_report_is_ignored(tmp_path: Path) -> None:
    cache = ReportCache(tmp_path / "c.json", max_age_s=60)
    cache.save(BenchmarkReport(REPORT.entries, measured_at=time.time() - 120), quick=False)
    assert cache.load(quick=False) is None and "old" in cache.reason


@pytest.mark.parametrize("text", [
    "{not json",
    "[]",
    '{"format": 99, "quick": false, "report": {}}',
    '{"format": 2, "quick": false}',
    '{"format": 2, "quick": false, "report": {"entries": [{"name": ""}], "measured_at": 1}}',
    '{"format": 2, "quick": false, "report": {"entries": [], "measured_at": "yesterday"}}',
])
def test_corrupt_cache_is_ignored(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    cache = ReportCache(path, max_age_s=60)
    assert cache.load(quick=True) is None and "corrupt" in cache.reason


def test_a_report_cached_before_the_score_is_measured_again(psutil_benchmark: PsutilBenchmark) -> None:
    old = {"format": 1, "quick": True, "report": codec.unstructure(REPORT)}  # format 1 had no score
    psutil_benchmark.cache.path.parent.mkdir(parents=True)
    psutil_benchmark.cache.path.write_text(json.dumps(old))
    assert psutil_benchmark.measure(quick=True).score is not None


def test_provider_remeasures_over_a_corrupt_cache(psutil_benchmark: PsutilBenchmark) -> None:
    psutil_benchmark.cache.path.parent.mkdir(parents=True)
    psutil_benchmark.cache.path.write_bytes(b"\x00\xff garbage")
    report = psutil_benchmark.measure(quick=True)
    assert report.get("cpu.gflops_1core") > 0
    assert json.loads(psutil_benchmark.cache.path.read_text())["quick"] is True
    assert psutil_benchmark.measure(quick=True) == report  # now served from the cache


def test_provider_refresh_remeasures(psutil_benchmark: PsutilBenchmark) -> None:
    psutil_benchmark.cache.save(REPORT, quick=False)
    assert psutil_benchmark.measure(quick=True) == REPORT
    fresh = psutil_benchmark.measure(quick=True, refresh=True)
    assert fresh != REPORT and fresh.get("ram.copy_gbps") > 0


def test_unwritable_cache_still_returns_a_report(psutil_benchmark: PsutilBenchmark) -> None:
    psutil_benchmark.cache.path.parent.parent.mkdir(parents=True, exist_ok=True)
    psutil_benchmark.cache.path.parent.write_text("a file where the cache dir should be")
    assert psutil_benchmark.measure(quick=True).get("cpu.int_gops_1core") > 0
