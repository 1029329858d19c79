"""A job submitted as codec frames (the control socket's ``submit``) is stored as those frames, not encoded again."""

from __future__ import annotations

from pathlib import Path

import msgpack

from gaia_core import codec
from gaia_core.jobs.jobstore import JobStore
from gaia_core.model import Task
from gaia_core.store import Store
from gaia_core.testing.conformance.prover import sample_task


def test_submitted_frames_are_stored_as_given_and_resume_as_their_tasks(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        jobs = JobStore(store)
        task = sample_task()
        # the bytes a client sent: valid, but not this node's own encoding (the map's keys in another order)
        frame = msgpack.packb(dict(reversed(msgpack.unpackb(codec.encode(task)).items())))
        assert frame != codec.encode(task) and codec.decode(frame, Task) == task
        jobs.create("aa" * 16, "t", 1, 0.0, [task], None, frames=[frame])
        (row,) = jobs.unfinished()
        assert row["task"] == frame and codec.decode(row["task"], Task) == task
        jobs.create("bb" * 16, "t", 1, 0.0, [task], None)  # no frames: encoded here
        assert {codec.decode(r["task"], Task) for r in jobs.unfinished()} == {task}
    finally:
        store.close()
