"""The node's SQLite state: write-behind batches, and one bad row never costs the others."""

from __future__ import annotations

import math
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
