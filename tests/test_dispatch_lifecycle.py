"""The job lifecycle across a node's start, on real in-process nodes with their own state.db (stop: test_drain.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from inprocess import build_node, load_plugins, make_home, running
from nodes import echo_tasks, node_id

from gaia_core.jobs.jobstore import JobStore
from gaia_core.store import Store

pytest.importorskip("gaia_runner_wasm.workloads")


def test_a_stored_task_that_no_longer_decodes_is_quarantined_and_the_node_starts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = make_home(tmp_path, "damaged")
    store = Store(home.state_db)
    JobStore(store).create("ab" * 8, "damaged", 1, 0.0, echo_tasks([b"kept", b"damaged"], node_id(home)), None)
    store.execute("UPDATE tasks SET task = ? WHERE idx = 1", (b"\xc1 not a task frame",))
    store.close()
    with caplog.at_level(logging.WARNING, logger="gaia.jobs"):
        with running(build_node(home, load_plugins()), drain_s=2.0) as node:
            status = node.jobs.wait_job("abab", timeout=30)
            rows = node.jobs.job_results("abab")
    assert status["tasks"] == {"done": 1, "failed": 1}
    assert rows[1]["state"] == "failed" and rows[1]["reason"].startswith("quarantined: ")
    assert [r.getMessage() for r in caplog.records].count("stored task quarantined") == 1
