"""TaskState, JobStatus and VerdictStatus: enums whose values are the strings state.db, JSON and the wire hold."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest

from gaia_core import codec, plugin_api
from gaia_core.jobs.dispatcher import Slot
from gaia_core.jobs.jobstore import JobStore
from gaia_core.jobs.messages import ResultAck
from gaia_core.model import JobStatus, Task, TaskState, Verdict, VerdictStatus
from gaia_core.rewards import Credit, Ledger
from gaia_core.store import Store
from gaia_core.verification import Trust, combine

ENUMS = {
    TaskState: ["pending", "done", "failed", "cancelled"],
    JobStatus: ["running", "finished", "cancelled"],
    VerdictStatus: ["valid", "invalid", "unverified"],
}


@pytest.mark.parametrize("enum_cls", list(ENUMS), ids=lambda c: c.__name__)
def test_values_are_the_strings_used_before(enum_cls: type) -> None:
    assert [member.value for member in enum_cls] == ENUMS[enum_cls]


@pytest.mark.parametrize("member", [m for cls in ENUMS for m in cls], ids=str)
def test_a_state_reads_prints_and_serialises_as_its_value(member: TaskState | JobStatus | VerdictStatus) -> None:
    value = member.value
    assert member == value and isinstance(member, str)
    assert str(member) == value and f"{member}" == value and f"{member:>12}" == f"{value:>12}"
    assert json.dumps({member: member}) == json.dumps({value: value})
    assert {value: 1}[member] == 1 and {member: 1}[value] == 1  # same hash: dict keys mix
    assert type(member)(value) is member


def test_the_plugin_api_exports_them() -> None:
    assert {"TaskState", "JobStatus", "VerdictStatus"} <= set(plugin_api.__all__)
    assert plugin_api.VerdictStatus is VerdictStatus


def test_a_verdict_holds_the_enum_and_encodes_to_the_same_bytes() -> None:
    verdict = Verdict("invalid", "bad commitment", "a" * 64, "mock-groth16")
    assert verdict.status is VerdictStatus.INVALID and not verdict.ok
    assert Verdict(VerdictStatus.VALID).ok
    plain = {"gaia": codec.SCHEMA_VERSION, "type": "Verdict",
             "data": {"status": "invalid", "reason": "bad commitment", "task_id": "a" * 64, "scheme": "mock-groth16"}}
    assert codec.encode(verdict) == msgpack.packb(plain, use_bin_type=True)
    decoded = codec.decode(codec.encode(verdict), Verdict)
    assert decoded == verdict and decoded.status is VerdictStatus.INVALID


def test_an_unknown_verdict_status_is_refused_in_one_line() -> None:
    frame = msgpack.packb({"gaia": codec.SCHEMA_VERSION, "type": "Verdict", "data": {"status": "maybe"}},
                          use_bin_type=True)
    with pytest.raises(codec.CodecError) as info:
        codec.decode(frame, Verdict)
    assert "status" in info.value.message and "\n" not in info.value.message
    with pytest.raises(ValueError):
        Verdict("maybe")


def test_acks_and_credits_hold_the_enum() -> None:
    assert ResultAck("t", "unverified").verdict is VerdictStatus.UNVERIFIED
    assert Credit("t", "valid", 1.0).verdict is VerdictStatus.VALID
    with pytest.raises(ValueError):
        Credit("t", "maybe", 1.0)


def test_combine_and_trust_compare_by_member() -> None:
    valid, invalid = Verdict("valid", "ok", "t", "a"), Verdict("invalid", "no", "t", "b")
    assert combine([valid, invalid]) is invalid
    assert combine([]).status is VerdictStatus.UNVERIFIED
    trust = Trust(threshold=2)
    assert trust.record("p", valid) == 1 and trust.record("p", invalid) == 0


def test_a_slot_starts_pending() -> None:
    slot = Slot("job", 0, Task(module_id="e" * 64, input=b"x"), 1)
    assert slot.state is TaskState.PENDING


def test_state_db_keeps_the_plain_strings(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    jobs, ledger = JobStore(store), Ledger(store)
    jobs.create("aa11", "first", 1, 0.0, [Task(module_id="e" * 64, input=b"x")], None)
    assert jobs.job("aa11")[0] is JobStatus.RUNNING
    jobs.finish_task("aa11", 0, TaskState.DONE)
    jobs.finish_job("aa11")
    ledger.record("ab" * 32, Credit("t1", VerdictStatus.VALID, 1.5), role="granted")
    store.flush()
    assert store.execute("SELECT state FROM tasks WHERE job = 'aa11'") == [("done",)]
    assert store.execute("SELECT status FROM jobs WHERE id = 'aa11'") == [("finished",)]
    assert store.execute("SELECT typeof(verdict), verdict FROM ledger") == [("text", "valid")]
    status = jobs.job("aa11")[0]
    assert status is JobStatus.FINISHED and json.dumps(status) == '"finished"'
    granted = ledger.granted("ab" * 32, "t1")
    assert granted is not None and granted.verdict is VerdictStatus.VALID
    store.close()


@pytest.mark.parametrize("compact", [False, True])
def test_commands_print_a_state_as_before(compact: bool, capsys: pytest.CaptureFixture[str]) -> None:
    from gaia_core.console import print_json

    print_json({"status": JobStatus.RUNNING, "tasks": {TaskState.DONE: 2}, "verdict": VerdictStatus.VALID},
               compact=compact)
    with_enums = capsys.readouterr().out
    print_json({"status": "running", "tasks": {"done": 2}, "verdict": "valid"}, compact=compact)
    assert with_enums == capsys.readouterr().out
