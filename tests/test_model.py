"""The data model: validation on construction, task identity, report merging."""

from __future__ import annotations

import math

import attrs
import pytest

from gaia_core.errors import ValidationError
from gaia_core.hashing import content_id
from gaia_core.model import (
    CAPABILITIES,
    MAX_TIME,
    BenchmarkReport,
    Envelope,
    Limits,
    Measurement,
    NodeRecord,
    Proof,
    ResourceSample,
    Status,
    Task,
    TaskResult,
    Verdict,
)

A = "a" * 64
MODULE = b"\x00asm\x01\x00\x00\x00"


def test_limits_default_and_capabilities_are_a_frozenset() -> None:
    limits = Limits(capabilities=["net", "net", "clock"])
    assert limits.capabilities == frozenset({"net", "clock"})
    assert Limits().capabilities == frozenset()
    assert CAPABILITIES == {"fs", "net", "env", "clock", "random"}


@pytest.mark.parametrize(
    "kwargs",
    [{"fuel": 0}, {"fuel": 1.5}, {"timeout_s": 0}, {"memory_bytes": -1}, {"max_tables": -1},
     {"max_instances": 0}, {"capabilities": {"gpu"}}],
    ids=lambda k: next(iter(k)),
)
def test_invalid_limits_are_refused(kwargs: dict) -> None:
    with pytest.raises((ValueError, TypeError)):
        Limits(**kwargs)


def test_limits_exceeds_names_each_excess() -> None:
    offer = Limits(fuel=100, timeout_s=5, capabilities={"clock"})
    assert Limits(fuel=100, timeout_s=5).exceeds(offer) == []
    over = Limits(fuel=101, timeout_s=6, capabilities={"clock", "net"}).exceeds(offer)
    assert over == ["fuel=101 > 100", "timeout_s=6.0 > 5.0", "capabilities ['net'] not allowed"]


def test_task_create_computes_the_module_id() -> None:
    task = Task.create(MODULE, input=b"in")
    assert task.module_id == content_id(MODULE)
    assert task.input_id == content_id(b"in")
    assert task.module == MODULE


def test_the_task_id_is_the_same_for_the_same_work() -> None:
    one = Task.create(MODULE, input=b"in", limits=Limits(capabilities=["net", "clock"]))
    two = Task.create(MODULE, input=b"in", limits=Limits(capabilities=["clock", "net"]))
    assert one.id == two.id
    assert len(one.id) == 64
    assert one.without_module().id == one.id
    assert one.without_module().module is None
    assert one.without_module() == one  # the module bytes are not part of equality either


@pytest.mark.parametrize(
    "change",
    [{"input": b"other"}, {"entry": "main"}, {"kind": "python"}, {"limits": Limits(fuel=1)},
     {"limits": Limits(capabilities={"net"})}, {"submitter": A}, {"priority": 1}, {"deadline": 10.0},
     {"job": "j"}, {"module_id": "b" * 64}],
    ids=lambda c: next(iter(c)),
)
def test_every_identity_field_changes_the_task_id(change: dict) -> None:
    task = Task.create(MODULE, input=b"in")
    assert attrs.evolve(task, **change).id != task.id


@pytest.mark.parametrize(
    "kwargs",
    [{"module_id": "xyz"}, {"module_id": A, "kind": "Wasm"}, {"module_id": A, "priority": 1001},
     {"module_id": A, "input": "text"}, {"module_id": A, "entry": ""}, {"module_id": A, "submitter": "ab"},
     {"module_id": A, "module": "text"}],
    ids=["module_id", "kind", "priority", "input", "entry", "submitter", "module"],
)
def test_invalid_tasks_are_refused(kwargs: dict) -> None:
    with pytest.raises((ValueError, TypeError)):
        Task(**kwargs)


def test_task_repr_hides_payloads() -> None:
    text = repr(Task.create(MODULE, input=b"x" * 1000))
    assert "<1000 bytes>" in text and "<8 bytes>" in text


def test_task_result_status_and_ok() -> None:
    assert TaskResult(task_id=A, status="ok").ok
    result = TaskResult(task_id=A, status="out_of_fuel")
    assert result.status is Status.OUT_OF_FUEL and not result.ok
    with pytest.raises(ValueError):
        TaskResult(task_id=A, status="exploded")
    with pytest.raises(ValueError):
        TaskResult(task_id=A, status="ok", energy_source="guessed")


def test_every_documented_status_exists() -> None:
    assert {s.value for s in Status} >= {"ok", "trap", "out_of_fuel", "timeout", "out_of_memory",
                                         "output_too_large", "invalid", "rejected", "error"}


def test_verdict_ok_only_when_valid() -> None:
    assert Verdict("valid").ok
    assert not Verdict("unverified").ok and not Verdict("invalid").ok
    with pytest.raises(ValueError):
        Verdict("maybe")


def test_benchmark_reports_merge_and_summarise() -> None:
    first = BenchmarkReport([Measurement("cpu.cores", 4), Measurement("ram.bytes", 8.0)], measured_at=1.0)
    second = BenchmarkReport([Measurement("ram.bytes", 16.0, source="reported"), Measurement("gpu", "none"),
                              Measurement("ok", True)], measured_at=2.0)
    merged = first.merge(second)
    assert merged.get("ram.bytes") == 16.0 and merged.get("cpu.cores") == 4
    assert merged.get("absent", "dflt") == "dflt"
    assert merged.measured_at == 2.0
    assert merged.summary() == {"cpu.cores": 4.0, "ram.bytes": 16.0}


def test_node_record_and_envelope_check_key_sizes() -> None:
    NodeRecord(node_id=A, transport={"curve": bytes(32)})
    with pytest.raises(ValueError):
        NodeRecord(node_id=A, transport={"curve": bytes(1025)})
    with pytest.raises(ValueError):
        Envelope("k", A, 1.0, bytes(15), b"")


def test_records_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Limits().fuel = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [(Limits, {"timeout_s": math.inf}), (Limits, {"timeout_s": math.nan}),
     (Task, {"module_id": A, "deadline": math.nan}), (Task, {"module_id": A, "deadline": "inf"}),
     (Task, {"module_id": A, "deadline": -1.0}), (Task, {"module_id": A, "deadline": MAX_TIME + 1}),
     (Task, {"module_id": A, "priority": 1001}), (Task, {"module_id": A, "priority": -1001}),
     (Task, {"module_id": A, "priority": True}), (Task, {"module_id": A, "priority": 1.0}),
     (TaskResult, {"task_id": A, "status": "ok", "wall_s": math.nan}),
     (TaskResult, {"task_id": A, "status": "ok", "cpu_s": -1.0}),
     (TaskResult, {"task_id": A, "status": "ok", "energy_j": -0.1}),
     (TaskResult, {"task_id": A, "status": "ok", "finished_at": math.inf}),
     (Proof, {"scheme": "s", "task_id": A, "node_id": A, "commitment": b"", "body": b"", "proving_s": -1}),
     (Proof, {"scheme": "s", "task_id": A, "node_id": A, "commitment": b"", "body": b"", "created_at": math.nan}),
     (Measurement, {"name": "cpu.gflops", "value": math.nan}),
     (BenchmarkReport, {"measured_at": -math.inf}),
     (ResourceSample, {"cpu_percent": math.nan}), (ResourceSample, {"power_w": -1.0}),
     (ResourceSample, {"ram_used_bytes": -1}), (ResourceSample, {"at": math.nan}),
     (NodeRecord, {"node_id": A, "load": math.nan}),
     (NodeRecord, {"node_id": A, "benchmark": {"cpu.gflops": math.inf}}),
     (NodeRecord, {"node_id": A, "updated_at": -1.0}),
     (Envelope, {"kind": "k", "sender": A, "sent_at": math.nan, "nonce": bytes(16), "body": b""})],
    ids=lambda x: x.__name__ if isinstance(x, type) else "-".join(f"{k}={v!r}" for k, v in x.items()
                                                                      if k not in {"task_id", "module_id"})[:40],
)
def test_non_finite_negative_and_absurd_numbers_are_a_validation_error(cls: type, kwargs: dict) -> None:
    with pytest.raises(ValidationError) as info:
        cls(**kwargs)
    assert isinstance(info.value, ValueError)  # attrs' own validators raise ValueError: callers catch one type
    assert "\n" not in str(info.value)


def test_sane_numbers_are_kept() -> None:
    assert Task(module_id=A, deadline=0).deadline == 0.0
    assert Task(module_id=A, deadline=MAX_TIME).deadline == MAX_TIME
    assert TaskResult(task_id=A, status="ok", energy_j=None, wall_s=0).energy_j is None
    assert Measurement("cpu.model", "x86_64").value == "x86_64" and Measurement("gone", None).value is None
    assert ResourceSample(cpu_percent=250.0, rss_bytes=0).cpu_percent == 250.0  # a process may use many cores
