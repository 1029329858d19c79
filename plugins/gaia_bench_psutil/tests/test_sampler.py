"""The background sampler: bounded history, clean stop, peak RSS for task accounting."""

from __future__ import annotations

import time

import pytest

from gaia_bench_psutil import PsutilBenchmark, Sampler
from gaia_core.model import ResourceSample


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_sampler_collects_a_bounded_history() -> None:
    sampler = Sampler(lambda: ResourceSample(rss_bytes=7), interval_s=0.01, keep=3).start()
    assert wait_for(lambda: len(sampler.history()) == 3 and sampler.latest() is not None)
    time.sleep(0.05)
    sampler.stop()
    assert len(sampler.history()) == 3
    assert sampler.peak_rss(0.0, time.time()) == 7
    assert sampler.peak_rss(0.0, 1.0) == 0


def test_sampler_rejects_a_bad_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        Sampler(ResourceSample, interval_s=0)


def test_provider_sampler_feeds_peak_memory_into_accounting(psutil_benchmark: PsutilBenchmark) -> None:
    sampler = psutil_benchmark.start_sampler(interval_s=0.01)
    assert psutil_benchmark.start_sampler() is sampler
    start = psutil_benchmark.sample()
    assert wait_for(lambda: len(sampler.history(since=start.at)) >= 2)
    end = psutil_benchmark.sample()
    cost = psutil_benchmark.account(start, end, cpu_s=0.1)
    assert cost.peak_memory_bytes >= max(s.rss_bytes for s in sampler.history(since=start.at)
                                         if s.at <= end.at)
    psutil_benchmark.close()
    assert not sampler._thread.is_alive()
