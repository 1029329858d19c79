"""Purged payloads leave no bytes in state.db: secure_delete zeroes deleted cells, but not the old copies
that b-tree balancing leaves behind when rows grow (a task's result written in), so a purge rewrites the
file (VACUUM). The order below left a task's input on a page reused for the proofs index before the fix
(found by shuffling finish orders; a devnet job hit such orders in tests/test_node.py's privacy test)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gaia_core.store import Store

MARKER = b"GAIA-PRIVACY-MARKER-0123456789abcdef01234567"
JOB = "j" * 16
#: The order the 12 tasks finish in, and those whose proof is kept.
FINISHED = [0, 11, 4, 6, 8, 9, 10, 3, 5, 7, 1, 2]
PROVED = {11, 4, 7, 1}


def _fill_and_purge(store: Store) -> None:
    """Tasks finished in :data:`FINISHED` order (rows grow as results are written), then purged."""
    for i in range(12):
        store.execute("INSERT INTO tasks (id, job, idx, state, task, updated) VALUES (?, ?, ?, 'pending', ?, 0)",
                      (hashlib.sha256(b"18 %d" % i).hexdigest(), JOB, i, b"T" * 200 + MARKER + b" task %d" % i))
    for i in FINISHED:
        store.execute("UPDATE tasks SET state = 'done', result = ?, peers = ?, updated = 1 "
                      "WHERE job = ? AND idx = ?",
                      (b"R" * 300 + MARKER + b" out %d" % i, hashlib.sha256(b"p%d" % i).hexdigest(), JOB, i))
        if i in PROVED:
            store.execute("INSERT INTO proofs (job, idx, proof) VALUES (?, ?, ?)", (JOB, i, b"P" * 560))
    store.purge_payloads(JOB)
    assert list(store.rows("SELECT idx FROM tasks WHERE task IS NOT NULL OR result IS NOT NULL")) == []


def _leaked(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.is_file() and MARKER in p.read_bytes()]


def test_a_purged_job_leaves_no_input_or_output_on_disk(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        _fill_and_purge(store)
        store.scrub()
        assert _leaked(tmp_path) == []
    finally:
        store.close()
    assert _leaked(tmp_path) == []


def test_a_store_closed_before_its_scrub_rewrites_the_file_as_it_closes(tmp_path: Path) -> None:
    """A node stopped right after a job's release (housekeeping scrubs every 0.2 s) leaves nothing either."""
    store = Store(tmp_path / "state.db")
    _fill_and_purge(store)
    store.close()
    assert _leaked(tmp_path) == []
