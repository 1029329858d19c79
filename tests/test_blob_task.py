"""Tasks name blobs by id: part of the task's identity, ids of tasks without blobs unchanged, validated on
decode, bounded at admission; a job counts as released for its blobs once its payloads are gone, by
``--release`` or by the retention."""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import pytest

from gaia_core import admission, codec
from gaia_core.errors import CodecError, RejectedError
from gaia_core.jobs.jobstore import JobStore
from gaia_core.model import MAX_TASK_BLOBS, Task
from gaia_core.roles import NodeContext
from gaia_core.store import Store

A, B = "a" * 64, "b" * 64


def test_ids_of_tasks_without_blobs_are_unchanged() -> None:
    """Ids computed before tasks had blobs (the same work keeps its id across versions)."""
    task = Task(module_id=A, input=b"in", entry="main", priority=3, deadline=2e9, submitter=B, job="j1")
    assert task.id == "c524f3fefe937189b11c0719e1c81ccef5fe451c86a74c865550cc2a86f83785"
    assert Task(module_id="c" * 64).id == "888dc2db638df9c52e99ebc4589b99151d820274f2d0de94a934abc5f4308675"


def test_blobs_are_part_of_the_identity_in_order() -> None:
    task = Task(module_id=A)
    one, two = attrs.evolve(task, blobs=[A]), attrs.evolve(task, blobs=[A, B])
    assert len({task.id, one.id, two.id, attrs.evolve(task, blobs=[B, A]).id}) == 4
    assert codec.decode(codec.encode(two), Task) == two and codec.decode(codec.encode(two), Task).blobs == (A, B)


def test_bad_blob_ids_are_refused_on_decode() -> None:
    data = codec.unstructure(Task(module_id=A))
    with pytest.raises(CodecError, match="blobs must be 64 lowercase hex"):
        codec.structure({**data, "blobs": ["../etc/passwd"]}, Task)
    with pytest.raises(CodecError, match="blobs"):
        codec.structure({**data, "blobs": [A] * (MAX_TASK_BLOBS + 1)}, Task)


def test_admission_bounds_the_blobs_of_a_task(node_context: NodeContext) -> None:
    task = Task(module_id=A, blobs=[f"{i:064x}" for i in range(admission.MAX_BLOBS + 1)])
    with pytest.raises(RejectedError, match="fetches at most") as refused:
        admission.check(task, node_context)
    assert refused.value.reason == "too_large"
    admission.check(attrs.evolve(task, blobs=task.blobs[:admission.MAX_BLOBS]), node_context)


def test_jobs_count_as_released_once_their_payloads_are_gone(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        jobs = JobStore(store)
        for job in ("kept", "released", "pruned"):
            jobs.create(job, job, 1, 0.0, [Task(module_id=A, blobs=[B], input=job.encode())], None)
        store.execute("UPDATE jobs SET status = 'finished', finished = ? WHERE id != 'kept'", (time.time() - 60,))
        assert jobs.released(["kept", "released", "pruned", "never"]) == ["never"]
        jobs.release("released")
        assert jobs.released(["kept", "released", "pruned"]) == ["released"]
        assert store.prune(30) == ["pruned"]  # the retention
        assert jobs.released(["kept", "released", "pruned"]) == ["released", "pruned"]
    finally:
        store.close()
