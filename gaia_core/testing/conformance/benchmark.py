"""Conformance suite for the benchmark role (:class:`gaia_core.roles.Benchmark`).

Subclass :class:`BenchmarkTests` in your plugin's tests and provide a ``make_benchmark`` fixture
returning the callable your :class:`~gaia_core.roles.BenchmarkSpec` registers (every suite asks for
``make_<role>``, the factory of its spec); the suite builds the provider from ``node_context`` and
calls its ``close()``, when it has one, after each test::

    from gaia_core.testing.conformance.benchmark import BenchmarkTests

    class TestMyBenchmark(BenchmarkTests):
        @pytest.fixture
        def make_benchmark(self):
            return MyBenchmark

(Overriding the ``provider`` fixture instead, to build the provider yourself, also works.)

Every test calls ``measure(quick=True)`` (the suite must stay fast) and
``sample()`` a bounded number of times.

A report must carry the role's score: a measurement named :data:`~gaia_core.model.SCORE` (``"score"``),
in :data:`~gaia_core.model.SCORE_UNIT` (``"reference cores"``), finite and positive. Peers rank nodes
by it (with their observed speed); see docs/benchmarking.md for what a reference core is.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeGuard

import pytest

from gaia_core import codec
from gaia_core.model import SCORE, SCORE_UNIT, BenchmarkReport, Measurement, ResourceSample
from gaia_core.roles import Benchmark, NodeContext

BenchmarkFactory = Callable[[NodeContext], Benchmark]

#: Concurrent sample() callers in the thread-safety test, and samples each takes.
THREADS, SAMPLES_PER_THREAD = 4, 5
_SOURCES = {"measured", "estimated", "reported", "unknown"}


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_sample(sample: object) -> None:
    """Assert that ``sample`` is a plausible ResourceSample taken just now."""
    assert isinstance(sample, ResourceSample), f"sample() returned {type(sample).__name__}, not ResourceSample"
    assert abs(time.time() - sample.at) < 60, f"sample.at {sample.at} is not the current time"
    for name in ("cpu_percent", "gpu_util_percent"):
        value = getattr(sample, name)
        assert value is None or (_number(value) and 0 <= value <= 100), f"{name}={value!r} is not 0-100 or None"
    for name in ("ram_used_bytes", "ram_total_bytes", "rss_bytes", "vram_used_bytes", "vram_total_bytes"):
        value = getattr(sample, name)
        assert value is None or (isinstance(value, int) and value >= 0), f"{name}={value!r} is not a byte count"
    for used, total in (("ram_used_bytes", "ram_total_bytes"), ("vram_used_bytes", "vram_total_bytes")):
        u, t = getattr(sample, used), getattr(sample, total)
        assert u is None or t is None or u <= t, f"{used}={u} exceeds {total}={t}"
    if sample.power_w is None:
        assert sample.power_source == "unknown", "power_w is None but power_source is not 'unknown'"
    else:
        assert _number(sample.power_w) and math.isfinite(sample.power_w) and sample.power_w >= 0, \
            f"power_w={sample.power_w!r} is not a finite non-negative number"
        assert sample.power_source in {"measured", "estimated"}, \
            f"power_w is set but power_source is {sample.power_source!r}"


def check_report(report: object) -> None:
    """Assert that ``report`` is a well-formed BenchmarkReport measured recently."""
    assert isinstance(report, BenchmarkReport), f"measure() returned {type(report).__name__}, not BenchmarkReport"
    assert report.entries, "the report has no entries"
    assert math.isfinite(report.measured_at) and report.measured_at <= time.time() + 1, \
        f"measured_at {report.measured_at} is in the future or not finite"
    names = [e.name for e in report.entries]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    assert not duplicated, f"measurement names appear twice: {duplicated}"
    for e in report.entries:
        check_measurement(e)


def check_score(report: BenchmarkReport) -> None:
    """Assert that ``report`` carries the role's score: finite, positive, in reference cores."""
    found = [e for e in report.entries if e.name == SCORE]
    assert found, f"the report has no {SCORE!r} measurement (the node's throughput in {SCORE_UNIT}; peers rank by it)"
    assert found[0].unit == SCORE_UNIT, f"{SCORE} is in {found[0].unit!r}, not {SCORE_UNIT!r}"
    assert report.score is not None, f"{SCORE}={found[0].value!r} is not a finite positive number"


def check_measurement(e: object) -> None:
    """Assert one report entry says what it is, where it came from, and why when it is unknown."""
    assert isinstance(e, Measurement), f"entry {e!r} is not a Measurement"
    assert e.source in _SOURCES, f"{e.name}: source {e.source!r} not in {sorted(_SOURCES)}"
    assert e.provider, f"{e.name}: provider is empty (set it to your provider's name)"
    if e.source == "unknown":
        assert e.reason, f"{e.name} is unknown but gives no reason"
    else:
        assert e.value is not None, f"{e.name} has no value but its source is {e.source!r} (use 'unknown')"
    if _number(e.value):
        assert math.isfinite(e.value) and e.value >= 0, f"{e.name}={e.value!r} is not finite and non-negative"
    else:
        assert e.value is None or isinstance(e.value, str), f"{e.name} has a {type(e.value).__name__} value"


class BenchmarkTests:
    """The contract every benchmark provider meets. Provide a ``make_benchmark`` fixture."""

    @pytest.fixture
    def make_benchmark(self) -> BenchmarkFactory:
        """Override: return the callable that builds your benchmark provider from a NodeContext."""
        raise NotImplementedError("subclass BenchmarkTests and provide a `make_benchmark` fixture")

    @pytest.fixture
    def provider(self, make_benchmark: BenchmarkFactory, node_context: NodeContext) -> Iterator[Any]:
        """The provider under test, closed after the test when it has a ``close()``."""
        provider = make_benchmark(node_context)
        yield provider
        close = getattr(provider, "close", None)
        if callable(close):
            close()

    @pytest.fixture
    def report(self, provider: Any) -> BenchmarkReport:
        """One quick report of the provider under test."""
        return provider.measure(quick=True)

    def test_satisfies_protocol(self, provider: Any) -> None:
        assert isinstance(provider, Benchmark), f"{type(provider).__name__} lacks measure() or sample()"

    def test_report_is_well_formed(self, report: BenchmarkReport) -> None:
        check_report(report)

    def test_report_carries_a_score(self, report: BenchmarkReport) -> None:
        check_score(report)
        assert report.summary()[SCORE] == report.score, "the score is not announced with the other figures"

    def test_report_summary_is_numeric(self, report: BenchmarkReport) -> None:
        summary = report.summary()
        assert summary, "the report has no numeric measurement to announce in a NodeRecord"
        assert all(math.isfinite(v) and v >= 0 for v in summary.values()), \
            f"a figure is negative or not finite in {summary}"

    def test_report_survives_the_wire(self, report: BenchmarkReport) -> None:
        assert codec.decode(codec.encode(report), BenchmarkReport) == report

    def test_sample_is_plausible(self, provider: Any) -> None:
        check_sample(provider.sample())

    def test_samples_in_order(self, provider: Any) -> None:
        samples = [provider.sample() for _ in range(SAMPLES_PER_THREAD)]
        for sample in samples:
            check_sample(sample)
        times = [s.at for s in samples]
        assert times == sorted(times), f"sample times go backwards: {times}"

    def test_sample_is_thread_safe(self, provider: Any) -> None:
        found: list[object] = []
        errors: list[BaseException] = []

        def take() -> None:
            try:
                found.extend(provider.sample() for _ in range(SAMPLES_PER_THREAD))
            except BaseException as exc:  # re-raised in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=take) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, f"sample() raised from a thread: {errors[0]!r}"
        assert len(found) == THREADS * SAMPLES_PER_THREAD, "sample() did not return in time from every thread"
        for sample in found:
            check_sample(sample)
