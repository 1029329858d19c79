"""Opening state.db: a damaged, empty or newer database is refused with one line; old ones are migrated."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gaia_core.config import Home
from gaia_core.identity import Identity
from gaia_core.store import SCHEMA_VERSION, StateError, Store


def _filled(path: Path) -> Path:
    """A real state.db holding a job of 200 tasks with 2 KiB payloads (about 100 pages)."""
    store = Store(path)
    store.execute("INSERT INTO jobs VALUES ('job-1', 'filled', 1.0, 'running', 1, 0.0, NULL)")
    store.executemany("INSERT INTO tasks (id, job, idx, state, task, updated) "
                      "VALUES (?, 'job-1', ?, 'pending', ?, 1.0)",
                      [(f"task-{i}", i, os.urandom(2048)) for i in range(200)])
    store.close()
    return path


def _truncated(path: Path) -> None:
    _filled(path)
    os.truncate(path, path.stat().st_size // 2)


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a database, just bytes " * 300)


def _directory(path: Path) -> None:
    path.mkdir()


def _zero_length(path: Path) -> None:
    path.touch()


def _newer(path: Path) -> None:
    _filled(path)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def _fails_its_check(path: Path) -> None:
    """Well-formed pages holding a row the schema forbids (a NULL job name): only an integrity check notices."""
    _filled(path)
    db = sqlite3.connect(path, isolation_level=None)
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs'").fetchone()
    db.execute("PRAGMA writable_schema = ON")
    db.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'jobs'",
               (sql.replace("name TEXT NOT NULL", "name TEXT"),))
    db.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO jobs VALUES ('job-2', NULL, 2.0, 'running', 1, 0.0, NULL)")
    db.execute("PRAGMA writable_schema = ON")
    db.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'jobs'", (sql,))
    db.close()


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncated, "is damaged"),
    "garbage": (_garbage, "is damaged (file is not a database)"),
    "directory": (_directory, "is not a file"),
    "zero-length": (_zero_length, "is empty (0 bytes)"),
    "newer-version": (_newer, f"schema version {SCHEMA_VERSION + 1}, newer than this GAIA knows"),
    "failed-check": (_fails_its_check, "is damaged (NULL value in jobs.name"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_database_that_cannot_be_used_is_refused_with_what_to_do(tmp_path: Path, kind: str) -> None:
    damage, says = DAMAGE[kind]
    path = tmp_path / "state.db"
    damage(path)
    with pytest.raises(StateError) as refused:
        Store(path)
    assert says in str(refused.value)
    assert "\n" not in str(refused.value) and refused.value.hint
    assert path.exists()  # left where it was, for the user to move or restore


@pytest.mark.parametrize("kind", DAMAGE)
def test_gaia_node_refuses_it_with_one_line_and_no_traceback(tmp_path: Path, kind: str) -> None:
    home = Home(tmp_path / "home")
    Identity.generate().save(home.identity_dir)
    damage, says = DAMAGE[kind]
    damage(home.state_db)
    env = {k: v for k, v in os.environ.items() if k not in {"GAIA_LOAD_PLUGINS", "GAIA_DEBUG", "PYTHONPATH"}}
    proc = subprocess.run([sys.executable, "-m", "gaia_core", "node", "--listen", "tcp://127.0.0.1:0"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**env, "GAIA_HOME": str(home.root), "GAIA_BACKEND": "python", "COLUMNS": "300"})
    assert proc.returncode == StateError.exit_code != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and says in lines[0], proc.stderr
    assert "mv " in lines[0] or "rm " in lines[0] or "upgrade" in lines[0]


def test_a_new_database_is_created_whole_at_the_current_version(tmp_path: Path) -> None:
    Store(tmp_path / "state.db").close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]  # no half-built file left beside it
    with sqlite3.connect(tmp_path / "state.db") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_database_from_before_versions_keeps_its_rows_and_is_migrated(tmp_path: Path) -> None:
    path = _filled(tmp_path / "state.db")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 0")  # as written before schema versions were recorded
    store = Store(path)
    assert store.execute("SELECT COUNT(*) FROM tasks") == [(200,)]
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_locked_database_is_not_called_damaged(tmp_path: Path) -> None:
    path = _filled(tmp_path / "state.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the file
    try:
        with pytest.raises(StateError, match="cannot open .*locked") as refused:
            Store(path)
        assert "damaged" not in str(refused.value) and "mv " not in str(refused.value)
    finally:
        holder.close()
    Store(path).close()  # sound once released
