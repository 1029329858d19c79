"""The benchmark conformance suite passes a correct provider and catches a broken one."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import pytest

from gaia_core.model import SCORE, SCORE_UNIT, BenchmarkReport, Measurement, ResourceSample
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.benchmark import BenchmarkTests


class GoodBenchmark:
    """A tiny correct provider: its score, one measured figure, one unknown with its reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def measure(self, *, quick: bool = False) -> BenchmarkReport:
        return BenchmarkReport((
            Measurement(SCORE, 0.75, SCORE_UNIT, provider="good"),
            Measurement("cpu.gflops_1core", 1.5, "GFLOP/s", provider="good"),
            Measurement("gpu.count", None, source="unknown", reason="no driver", provider="good"),
        ))

    def sample(self) -> ResourceSample:
        with self._lock:
            return ResourceSample(cpu_percent=12.5, ram_used_bytes=1, ram_total_bytes=2, power_w=3.0,
                                  power_source="estimated")


class BrokenBenchmark:
    """Breaks the contract on purpose, one way per check."""

    def __init__(self) -> None:
        self._times = itertools.count(0, -1)

    def measure(self, *, quick: bool = False) -> BenchmarkReport:
        return BenchmarkReport((
            Measurement("ram.copy_gbps", -1.0, provider="broken"),            # negative
            Measurement("cpu.gflops_1core", 1.0, provider="broken"),
            Measurement("cpu.gflops_1core", 2.0, provider="broken"),          # duplicated name
            Measurement("gpu.count", None, source="unknown", provider="broken"),  # unknown without reason
        ))

    def sample(self) -> ResourceSample:
        # cpu over 100 %, used above total, power without a source, time running backwards
        return ResourceSample(at=time.time() + next(self._times), cpu_percent=250.0, ram_used_bytes=5,
                              ram_total_bytes=2, power_w=10.0, power_source="unknown")


class NotABenchmark:
    """Has neither measure() nor sample()."""


class TestGoodBenchmark(BenchmarkTests):
    @pytest.fixture
    def provider(self) -> GoodBenchmark:
        return GoodBenchmark()


class TestGoodBenchmarkFromItsFactory(BenchmarkTests):
    """The usual way: the suite builds the provider from ``make_benchmark``."""

    @pytest.fixture
    def make_benchmark(self) -> Callable[[NodeContext], GoodBenchmark]:
        return lambda context: GoodBenchmark()


SUITE = BenchmarkTests()
REPORT_CHECKS = ["test_report_is_well_formed", "test_report_summary_is_numeric", "test_report_carries_a_score"]
SAMPLE_CHECKS = ["test_sample_is_plausible", "test_samples_in_order", "test_sample_is_thread_safe"]


@pytest.mark.parametrize("check", REPORT_CHECKS)
def test_suite_catches_broken_reports(check: str) -> None:
    with pytest.raises(AssertionError):
        getattr(SUITE, check)(BrokenBenchmark().measure(quick=True))


@pytest.mark.parametrize("check", SAMPLE_CHECKS)
def test_suite_catches_broken_samples(check: str) -> None:
    with pytest.raises(AssertionError):
        getattr(SUITE, check)(BrokenBenchmark())


def test_suite_catches_a_non_provider() -> None:
    with pytest.raises(AssertionError):
        SUITE.test_satisfies_protocol(NotABenchmark())


def test_suite_catches_a_figure_that_is_not_a_number_or_text() -> None:
    report = BenchmarkReport((Measurement("bad", b"\x00", provider="broken"),))
    with pytest.raises(AssertionError, match="bytes value"):
        SUITE.test_report_is_well_formed(report)


def test_suite_catches_samples_in_backward_order_only() -> None:
    class Backwards(GoodBenchmark):
        def __init__(self) -> None:
            super().__init__()
            self._times = itertools.count(0, -1)

        def sample(self) -> ResourceSample:
            return ResourceSample(at=time.time() + next(self._times))

    SUITE.test_sample_is_plausible(Backwards())
    with pytest.raises(AssertionError, match="backwards"):
        SUITE.test_samples_in_order(Backwards())


@pytest.mark.parametrize(("score", "match"), [
    (None, "has no 'score'"),
    (Measurement(SCORE, 0.0, SCORE_UNIT, provider="broken"), "not a finite positive number"),
    (Measurement(SCORE, "fast", SCORE_UNIT, provider="broken"), "not a finite positive number"),
    (Measurement(SCORE, True, SCORE_UNIT, provider="broken"), "not a finite positive number"),
    (Measurement(SCORE, 12.0, "GFLOP/s", provider="broken"), "not 'reference cores'"),
], ids=["missing", "zero", "text", "bool", "other-unit"])
def test_suite_catches_a_report_without_a_usable_score(score: Measurement | None, match: str) -> None:
    figures = (Measurement("cpu.gflops_1core", 1.5, "GFLOP/s", provider="broken"),)
    report = BenchmarkReport(figures + ((score,) if score else ()))
    with pytest.raises(AssertionError, match=match):
        SUITE.test_report_carries_a_score(report)
