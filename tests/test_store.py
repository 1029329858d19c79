"""The node's SQLite state: write-behind batches, and one bad row never costs the others."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from gaia_core.model import Status, TaskResult
from gaia_core.store import Store


def test_deferred_writes_are_visible_to_readers_and_counters_add_up(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    store.defer("INSERT INTO stats (key, value) VALUES (?, ?)", ("written", 1.0))
    store.bump({"tasks.ok": 2})
    store.bump({"tasks.ok": 3})
    assert store.stats() == {"tasks.ok": 5.0, "written": 1.0}
    store.close()
    assert Store(tmp_path / "state.db").stats() == {"tasks.ok": 5.0, "written": 1.0}


def test_one_refused_row_loses_only_itself(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    store.defer("INSERT INTO jobs VALUES (?, ?, ?, 'running', 1, 0.0, NULL)", ("job-1", "ok", 1.0))
    store.defer("INSERT INTO jobs VALUES (?, ?, ?, 'running', 1, 0.0, NULL)", ("job-2", None, 1.0))  # NOT NULL
    store.bump({"tasks.ok": 1})
    store.flush()
    assert [r[0] for r in store.execute("SELECT id FROM jobs")] == ["job-1"]
    assert store.stats() == {"tasks.ok": 1.0}


@pytest.mark.parametrize("field, value", [("wall_s", math.inf), ("cpu_s", math.nan), ("energy_j", math.inf),
                                          ("fuel_used", 1 << 64), ("peak_memory_bytes", 1 << 63)])
def test_results_a_database_could_not_hold_are_refused_at_the_door(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TaskResult(task_id="a" * 64, status=Status.OK, **{field: value})


def _job(store: Store, job: str, *, finished: float | None, payload: bytes) -> None:
    store.execute("INSERT INTO jobs VALUES (?, 'j', 1.0, ?, 1, 0.0, ?)",
                  (job, "running" if finished is None else "finished", finished))
    store.executemany("INSERT INTO tasks (id, job, idx, state, task, result, updated) "
                      "VALUES (?, ?, ?, 'done', ?, ?, 1.0)",
                      [(f"{job}-t{i}", job, i, payload + bytes([i]), payload) for i in range(20)])


def test_prune_deletes_the_payloads_of_jobs_finished_before_the_retention_and_leaves_no_byte(tmp_path: Path) -> None:
    marker = b"GAIA-PRUNE-MARKER-" + os.urandom(8).hex().encode()
    store = Store(tmp_path / "state.db")
    now = time.time()
    _job(store, "old", finished=now - 100, payload=marker * 50)
    _job(store, "recent", finished=now - 1, payload=b"kept" * 50)
    _job(store, "running", finished=None, payload=b"busy" * 50)
    assert store.prune(older_than_s=50) == ["old"]
    assert store.prune(older_than_s=50) == []  # nothing left to prune there
    kept = {job: n for job, n in store.execute("SELECT job, COUNT(task) FROM tasks GROUP BY job")}
    assert kept == {"old": 0, "recent": 20, "running": 20}
    assert store.execute("SELECT COUNT(*), MIN(state) FROM tasks WHERE job = 'old'") == [(20, "done")]  # ids stay
    leaked = [p.name for p in tmp_path.iterdir() if marker in p.read_bytes()]
    store.close()
    leaked += [p.name for p in tmp_path.iterdir() if marker in p.read_bytes()]
    assert leaked == []


def test_scrub_applies_the_job_retention_it_was_given(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", job_retention_s=10)
    _job(store, "old", finished=time.time() - 11, payload=b"x" * 100)
    store.scrub()
    assert store.execute("SELECT COUNT(task) FROM tasks") == [(0,)]
    store.close()
