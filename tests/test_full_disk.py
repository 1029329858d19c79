"""Full-disk trials: state.db on a real, size-limited file system (a tmpfs the test mounts, so root only).

A full disk must never lose an accepted task nor stop the node: deferred writes wait in memory,
new jobs are refused with one line, and work resumes once space is freed.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import build_node, load_plugins, make_home
from nodes import call, echo_tasks, gaia, node_id, results, running_devnet, slow_tasks, submit, wait_job, wait_until

from gaia_core.config import Home
from gaia_core.store import DiskFull, Store

#: The size of the mounted file system: room for two nodes' homes and a few jobs.
DISK_SIZE = "48m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of :data:`DISK_SIZE` mounted for the test; always unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(mount)], check=True, timeout=30)  # still busy: detach it now


def fill(mount: Path) -> Path:
    """Fill the file system at ``mount`` with one file, to the last byte; return the file."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            block = b"\0" * chunk
            for _ in range(1 << 16):  # bounded: 64 GiB at 1 MiB, far more than any test disk
                try:
                    os.write(fd, block)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def ledger(home: Home, role: str, peer: str) -> dict[str, float]:
    """Task id -> credit of ``peer``'s rows in ``role`` with a valid or invalid verdict (an unverified
    result earns nothing on either side), read straight from the stopped node's state.db."""
    with sqlite3.connect(f"file:{home.state_db}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT task_id, credit FROM ledger WHERE role = ? AND node_id = ? "
                               "AND verdict IN ('valid', 'invalid')", (role, peer)))


def test_a_store_keeps_deferred_writes_while_the_disk_is_full_and_refuses_a_batch(small_disk: Path) -> None:
    store = Store(small_disk / "state.db")
    try:
        store.execute("INSERT INTO stats VALUES ('before', 1)")
        filler = fill(small_disk)
        for i in range(64):  # enough to need new pages in the WAL
            store.defer("INSERT INTO stats VALUES (?, ?)", (f"waited.{i}" + "x" * 2000, i))
        store.bump({"counter": 2})
        store.flush()
        assert store.full
        with pytest.raises(DiskFull, match=f"disk full: free space in {small_disk}"):
            with store.batch():
                store.defer("INSERT INTO stats VALUES ('refused', 1)")
        with pytest.raises(DiskFull):
            store.execute("INSERT INTO stats VALUES ('refused', 2)")
        assert store.stats()["before"] == 1  # reads go on

        filler.unlink()
        store.flush()
        assert not store.full
        stats = store.stats()
        assert len([k for k in stats if k.startswith("waited.")]) == 64
        assert stats["counter"] == 2 and "refused" not in stats
    finally:
        store.close()


def test_the_housekeeping_retention_waits_while_the_disk_is_full(small_disk: Path) -> None:
    store = Store(small_disk / "state.db", job_retention_s=0.0)
    try:
        store.execute("INSERT INTO jobs VALUES ('j', 'n', 0, 'finished', 1, 0, 0)")
        store.execute("INSERT INTO tasks (id, job, idx, state, task, updated) VALUES ('t', 'j', 0, 'done', ?, 0)",
                      (os.urandom(200_000),))
        filler = fill(small_disk)
        store.defer("INSERT INTO stats VALUES ('waiting', 1)")
        store.flush()
        assert store.full
        store.scrub()  # the purge of job j cannot be written now: no DiskFull out of housekeeping
        filler.unlink()
        store.flush()
        store.scrub()
        assert store.execute("SELECT task FROM tasks") == [(None,)]
    finally:
        store.close()


def test_while_the_disk_is_full_a_submitter_refuses_other_nodes_results_so_credit_is_never_reported_unsaved(
        small_disk: Path) -> None:
    node = build_node(make_home(small_disk, "submitter"), load_plugins())
    try:
        worker = "ab" * 32
        filler = fill(small_disk)
        node.store.defer("INSERT INTO stats VALUES (?, 1)", ("x" * 60000,))  # needs pages the disk has not got
        node.store.flush()
        assert node.store.full
        with pytest.raises(DiskFull, match="disk full"):  # the worker keeps the results and tries again later
            node.jobs.on_results(worker, [])
        filler.unlink()
        node.store.flush()
        assert node.jobs.on_results(worker, []).acks == ()
    finally:
        node.store.close()
        for runner in node.runners.values():
            runner.close()


def test_a_full_disk_refuses_new_jobs_in_one_line_loses_no_accepted_task_and_work_resumes(
        small_disk: Path, tmp_path: Path) -> None:
    workloads = pytest.importorskip("gaia_runner_wasm.workloads")
    module = tmp_path / "echo.wasm"
    module.write_bytes(workloads.module_bytes("echo"))
    big_input = tmp_path / "input"
    big_input.write_bytes(os.urandom(1 << 20))  # one task bigger than any slack left in the WAL
    with running_devnet(small_disk / "devnet", 2) as homes:
        submitter, worker = homes
        accepted = slow_tasks(node_id(submitter), 8, epochs=1500)  # run anywhere, the submitter included
        replicated = slow_tasks(node_id(submitter), 3, epochs=1501)  # each on both nodes
        jobs = {submit(submitter, accepted): accepted, submit(submitter, replicated, redundancy=2): replicated}
        wait_until(lambda: call(submitter, "status")["running"] >= 1, timeout=30, what="the first task to run")

        filler = fill(small_disk)
        full_at = time.monotonic()
        refused = gaia(submitter, "task", "submit", str(module), "--entry", "echo", "--input", str(big_input),
                       check=False)
        assert refused.returncode != 0
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and f"disk full: free space in {submitter.root}" in lines[0], refused.stderr
        assert "Traceback" not in refused.stderr
        time.sleep(max(0.0, 2.0 - (time.monotonic() - full_at)))  # tasks finish while the disk stays full
        assert call(submitter, "status")["node_id"] == node_id(submitter)  # the node still serves

        filler.unlink()
        freed_at = time.monotonic()
        later = wait_until(lambda: _submit_or_none(submitter, echo_tasks([b"after the disk was full"],
                                                                          node_id(submitter))),
                           timeout=20, what="a submission to be accepted again", interval=0.05)
        accepted_again_s = time.monotonic() - freed_at
        for job, tasks in jobs.items():
            assert wait_job(submitter, job, timeout=60)["tasks"] == {"done": len(tasks)}
            assert [r["state"] for r in results(submitter, job)] == ["done"] * len(tasks)
        assert wait_job(submitter, later, timeout=30)["tasks"] == {"done": 1}
        # the writes that waited in memory while the disk was full reached state.db
        assert "disk space is back" in submitter.log_file.read_text(errors="replace")
        print(f"\nfull-disk trial: a submission was accepted again {accepted_again_s:.2f}s after space was freed")

    submitter_id, worker_id = node_id(submitter), node_id(worker)
    assert ledger(submitter, "granted", worker_id) == pytest.approx(ledger(worker, "earned", submitter_id))
    with sqlite3.connect(f"file:{submitter.state_db}?mode=ro", uri=True) as db:
        for job, tasks in jobs.items():
            states = dict(db.execute("SELECT id, state FROM tasks WHERE job = ?", (job,)))
            assert states == {t.id: "done" for t in tasks}


def _submit_or_none(home: Home, tasks: list) -> str | None:
    try:
        return submit(home, tasks)
    except Exception as exc:  # the control call raises the node's one-line error while the disk is still full
        assert "disk full" in str(exc), exc
        return None
