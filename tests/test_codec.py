"""The wire codec: every record round-trips, and every kind of bad frame is a CodecError."""

from __future__ import annotations

import copy
import math
import typing

import attrs
import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from gaia_core import model
from gaia_core.codec import (
    SCHEMA_VERSION,
    canonical_bytes,
    canonical_id,
    decode,
    encode,
    structure,
    unstructure,
)
from gaia_core.errors import CodecError, ValidationError
from gaia_core.model import (
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
from gaia_core.roles import PeerInfo, QueueStats

A, B = "a" * 64, "b" * 64
MODULE = b"\x00asm\x01\x00\x00\x00"

RECORDS = [
    Limits(fuel=7, timeout_s=1.5, capabilities={"clock", "net"}),
    Task.create(MODULE, input=b"\x00\xff", entry="main", priority=-3, deadline=1e9, submitter=A, job="j1"),
    Task(module_id=A),
    TaskResult(task_id=A, status=Status.OUT_OF_FUEL, node_id=B, output=b"out", output_id=B, message="m",
               fuel_used=9, wall_s=0.25, cpu_s=0.5, peak_memory_bytes=1 << 20, energy_j=0.75,
               energy_source="estimated", finished_at=1.0),
    Proof(scheme="mock-groth16", task_id=A, node_id=B, commitment=b"c" * 32, body=b"\x01" * 200,
          signature=b"s" * 64, proving_s=0.1, simulated=True, created_at=2.0),
    Verdict("invalid", reason="bad commitment", task_id=A, scheme="mock-groth16"),
    Measurement("cpu.gflops", 12.5, unit="GFLOP/s", source="estimated", reason="no counter", provider="psutil"),
    BenchmarkReport([Measurement("a", 1.5), Measurement("b", 3), Measurement("c", "x86_64"), Measurement("d", None)],
                    measured_at=3.0),
    ResourceSample(at=4.0, cpu_percent=12.5, ram_used_bytes=1, ram_total_bytes=2, power_w=30.0,
                   power_source="measured"),
    NodeRecord(node_id=A, transport={"curve": bytes(range(32))}, addresses=["tcp://127.0.0.1:7700"], name="n",
               version="0.1.0", plugins=["gaia-runner-wasm"], task_kinds=["wasm"], offer=Limits(fuel=5),
               cores=4, benchmark={"cpu.gflops": 3.0}, load=0.5, updated_at=5.0),
    Envelope("task", A, 6.0, b"n" * 16, b"body", b"s" * 64),
    QueueStats(depth=2, capacity=10, rejected={"too_large": 1}, wait_p50_s=0.1, share={A: 0.5}),
    PeerInfo(A, "tcp://127.0.0.1:7701", state="down", last_seen=7.0, rtt_s=0.001,
             record=NodeRecord(node_id=A)),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_record_round_trips(record: object) -> None:
    frame = encode(record)
    assert isinstance(frame, bytes)
    assert decode(frame, type(record)) == record
    assert structure(unstructure(record), type(record)) == record


def test_a_task_keeps_its_module_bytes_and_its_id_on_the_wire() -> None:
    task = RECORDS[1]
    back = decode(encode(task), Task)
    assert back.module == MODULE
    assert back.id == task.id
    assert decode(encode(task.without_module()), Task).module is None


def test_measurement_values_keep_their_type() -> None:
    back = decode(encode(RECORDS[7]), BenchmarkReport)
    assert [type(e.value) for e in back.entries] == [float, int, str, type(None)]


def test_a_frame_is_a_versioned_map() -> None:
    frame = msgpack.unpackb(encode(Verdict("valid")))
    assert frame == {"gaia": SCHEMA_VERSION, "type": "Verdict",
                     "data": {"status": "valid", "reason": "", "task_id": "", "scheme": ""}}


def _frame(data: object, *, type_: str = "Verdict", version: object = SCHEMA_VERSION, **extra: object) -> bytes:
    return msgpack.packb({"gaia": version, "type": type_, "data": data, **extra}, use_bin_type=True)


def _refused(data: bytes, cls: type = Verdict, **kwargs: object) -> str:
    with pytest.raises(CodecError) as info:
        decode(data, cls, **kwargs)
    assert isinstance(info.value, ValidationError) and info.value.exit_code == 6
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("cut", [1, 5, 20, -1])
def test_truncated_frames_are_refused(cut: int) -> None:
    frame = encode(RECORDS[3])
    assert "not valid msgpack" in _refused(frame[:cut], TaskResult)


@pytest.mark.parametrize("garbage", [b"", b"\xc1", b"\xff" * 10, b"GET / HTTP/1.1\r\n", b"\x92\x01\x02\x03"])
def test_garbage_is_refused(garbage: bytes) -> None:
    _refused(garbage)


@pytest.mark.parametrize(
    "value",
    [[1, 2], "text", 7, None, {"gaia": 1, "type": "Verdict"}, {"gaia": 1, "type": "Verdict", "data": {}, "x": 1}],
    ids=["list", "str", "int", "nil", "missing-data", "extra-key"],
)
def test_frames_of_the_wrong_shape_are_refused(value: object) -> None:
    assert "wrong shape" in _refused(msgpack.packb(value))


def test_non_string_map_keys_are_refused() -> None:
    assert "not valid msgpack" in _refused(msgpack.packb({1: 2}))


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_a_wrong_schema_version_is_refused(version: object) -> None:
    message = _refused(_frame({"status": "valid"}, version=version))
    assert f"this node speaks {SCHEMA_VERSION}" in message
    assert "same GAIA version" in message


def test_a_different_record_type_is_refused() -> None:
    assert "expected a Task frame, got 'Verdict'" in _refused(encode(Verdict("valid")), Task)


def test_an_oversized_frame_is_refused_before_parsing() -> None:
    frame = encode(RECORDS[10])
    assert "over the 16-byte limit" in _refused(frame, Envelope, max_bytes=16)
    assert decode(memoryview(frame), Envelope, max_bytes=len(frame)) == RECORDS[10]


def _task_data(**change: object) -> dict:
    data = unstructure(Task(module_id=A))
    data.update(change)
    return data


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (_task_data(module_id="A" * 64), "module_id must be 64 lowercase hex"),
        (_task_data(module_id="ab"), "module_id"),
        (_task_data(kind="Not A Name"), "kind must be a short lowercase name"),
        (_task_data(priority=5000), "priority"),
        (_task_data(input="text"), "Task.input"),
        (_task_data(entry=""), "entry"),
        (_task_data(submitter="xyz"), "submitter"),
        (_task_data(limits={**unstructure(Limits()), "fuel": 0}), "'fuel' must be > 0"),
        (_task_data(limits={**unstructure(Limits()), "capabilities": ["gpu"]}), "unknown capabilities ['gpu']"),
        (_task_data(extra_field=1), "extra fields found (extra_field)"),
        ({"kind": "wasm"}, "Task.module_id"),
        ([1, 2, 3], "Task"),
    ],
    ids=["upper-hex", "short-hex", "bad-kind", "priority-range", "input-str", "empty-entry", "bad-submitter",
         "zero-fuel", "unknown-capability", "extra-field", "missing-field", "not-a-map"],
)
def test_invalid_field_values_are_refused(data: object, needle: str) -> None:
    message = _refused(_frame(data, type_="Task"), Task)
    assert message.startswith("invalid Task: ")
    assert needle in message


@pytest.mark.parametrize(
    ("cls", "data", "needle"),
    [
        (TaskResult, {"task_id": A, "status": "exploded"}, "'exploded' is not a valid Status"),
        (Envelope, {"kind": "k", "sender": A, "sent_at": 1.0, "nonce": b"short", "body": b""}, "nonce"),
        (NodeRecord, {"node_id": A, "curve_key": b"\x00" * 31}, "curve_key"),
        (Verdict, {"status": "maybe"}, "status"),
        (Proof, {"scheme": "s", "task_id": A, "node_id": B, "body": b""}, "Proof.commitment"),
    ],
    ids=["status", "nonce-length", "curve-key-length", "verdict-status", "missing-bytes"],
)
def test_invalid_values_of_other_records_are_refused(cls: type, data: dict, needle: str) -> None:
    assert needle in _refused(_frame(data, type_=cls.__name__), cls)


def test_huge_field_values_keep_the_message_short() -> None:
    message = _refused(_frame(_task_data(module_id="z" * 100_000), type_="Task"), Task)
    assert len(message) < 1000


def test_canonical_bytes_are_stable_and_order_sensitive() -> None:
    assert canonical_bytes(["a", 1, b"x", None, 1.5]) == canonical_bytes(["a", 1, b"x", None, 1.5])
    assert canonical_bytes([1, 2]) != canonical_bytes([2, 1])
    assert canonical_id([1, 2]) == canonical_id([1, 2]) != canonical_id([2, 1])
    assert len(canonical_id([])) == 64


_hex = st.text("0123456789abcdef", min_size=64, max_size=64)
_results = st.builds(
    TaskResult, task_id=_hex, status=st.sampled_from(Status), node_id=st.just("") | _hex,
    output=st.binary(max_size=64), message=st.text(max_size=32), fuel_used=st.integers(0, 2**63 - 1),
    wall_s=st.floats(0, 1e6), energy_j=st.none() | st.floats(0, 1e6),
)


@settings(max_examples=100, deadline=None)
@given(_results)
def test_property_task_results_round_trip(result: TaskResult) -> None:
    assert decode(encode(result), TaskResult) == result


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_property_arbitrary_bytes_decode_or_raise_codec_error(data: bytes) -> None:
    try:
        decode(data, TaskResult)
    except CodecError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 200), st.binary(min_size=1, max_size=1))
def test_property_a_flipped_byte_never_escapes_as_another_error(position: int, byte: bytes) -> None:
    frame = bytearray(encode(RECORDS[3]))
    frame[position % len(frame)] = byte[0]
    try:
        result = decode(bytes(frame), TaskResult)
    except CodecError:
        return
    assert attrs.has(type(result))


#: Every float field of the model's records, as a path into the record's plain data.
FLOAT_PATHS = {
    Limits: [("timeout_s",)],
    Task: [("deadline",), ("limits", "timeout_s")],
    TaskResult: [("wall_s",), ("cpu_s",), ("energy_j",), ("finished_at",)],
    Proof: [("proving_s",), ("created_at",)],
    Measurement: [("value",)],
    BenchmarkReport: [("measured_at",), ("entries", 0, "value")],
    ResourceSample: [("at",), ("cpu_percent",), ("gpu_util_percent",), ("power_w",)],
    NodeRecord: [("load",), ("updated_at",), ("benchmark", "cpu.gflops"), ("offer", "timeout_s")],
    Envelope: [("sent_at",)],
}
_SAMPLES = {type(r): r for r in RECORDS}


def _float_fields(cls: type) -> set[str]:
    hints = typing.get_type_hints(cls)
    return {f.name for f in attrs.fields(cls) if "float" in str(hints[f.name])}


def test_float_paths_name_every_float_field_of_the_model() -> None:
    for cls in vars(model).values():
        if isinstance(cls, type) and attrs.has(cls) and cls.__module__ == model.__name__:
            top = {path[0] for path in FLOAT_PATHS.get(cls, [])}
            assert _float_fields(cls) <= top, f"{cls.__name__}: add its float fields to FLOAT_PATHS"


def _replaced(data: object, path: tuple, value: object) -> object:
    data = copy.deepcopy(data)
    inner = data
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = value
    return data


_CASES = [(cls, path, bad) for cls, paths in FLOAT_PATHS.items() for path in paths
          for bad in (math.nan, math.inf, -math.inf)]


@pytest.mark.parametrize(("cls", "path", "bad"), _CASES,
                         ids=[f"{c.__name__}.{'.'.join(map(str, p))}={b}" for c, p, b in _CASES])
def test_a_frame_with_a_non_finite_float_is_refused(cls: type, path: tuple, bad: float) -> None:
    data = _replaced(unstructure(_SAMPLES[cls]), path, bad)
    message = _refused(_frame(data, type_=cls.__name__), cls)
    assert str(path[-1]) in message and "finite" in message


@pytest.mark.parametrize(
    ("cls", "path", "bad", "needle"),
    [(Task, ("deadline",), -1.0, "POSIX time"), (Task, ("deadline",), 1e300, "POSIX time"),
     (Envelope, ("sent_at",), -5.0, "POSIX time"), (TaskResult, ("cpu_s",), -0.5, "negative"),
     (TaskResult, ("energy_j",), -1.0, "negative"), (Proof, ("proving_s",), -1.0, "negative"),
     (ResourceSample, ("power_w",), -3.0, "negative"), (NodeRecord, ("load",), -0.1, "negative"),
     (ResourceSample, ("rss_bytes",), -1, "integer >= 0")],
    ids=lambda x: x.__name__ if isinstance(x, type) else None,
)
def test_a_frame_with_a_meaningless_negative_or_time_is_refused(cls: type, path: tuple, bad: float,
                                                                 needle: str) -> None:
    data = _replaced(unstructure(_SAMPLES[cls]), path, bad)
    assert needle in _refused(_frame(data, type_=cls.__name__), cls)


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [(Proof, "simulated", -29), (Proof, "simulated", 1), (TaskResult, "fuel_used", 1.5),
     (TaskResult, "fuel_used", True), (TaskResult, "message", 5), (Envelope, "sent_at", "1.5"),
     (Envelope, "sent_at", True), (Envelope, "body", "text"), (Task, "priority", 2.0)],
    ids=lambda x: x.__name__ if isinstance(x, type) else None,
)
def test_a_value_of_another_type_is_refused_not_coerced(cls: type, field: str, value: object) -> None:
    """A flipped byte once turned ``simulated: true`` into the integer -29, which decoded as True."""
    data = {**unstructure(_SAMPLES[cls]), field: value}
    assert f"expected {type(getattr(_SAMPLES[cls], field)).__name__}" in _refused(_frame(data, type_=cls.__name__), cls)


def test_an_integer_is_a_float() -> None:
    data = {**unstructure(_SAMPLES[Envelope]), "sent_at": 6}
    assert decode(_frame(data, type_="Envelope"), Envelope).sent_at == 6.0


def test_a_record_from_before_the_transport_extension_decodes_with_its_curve_key_moved() -> None:
    old = {"node_id": A, "curve_key": bytes(range(32)), "addresses": ["tcp://127.0.0.1:7700"], "updated_at": 5.0}
    record = decode(_frame(old, type_="NodeRecord"), NodeRecord)
    assert record.transport == {"curve": bytes(range(32))} and record.channel_keys() == {"curve": bytes(range(32))}
    assert decode(_frame({**old, "curve_key": b""}, type_="NodeRecord"), NodeRecord).transport == {}
    same = decode(_frame({**old, "transport": {"curve": bytes(range(32))}}, type_="NodeRecord"), NodeRecord)
    assert same == record
    contradicting = _frame({**old, "transport": {"curve": bytes(32)}}, type_="NodeRecord")
    assert "name different keys" in _refused(contradicting, NodeRecord)
    assert "curve_key" not in unstructure(record)  # a record is written in the new shape only
