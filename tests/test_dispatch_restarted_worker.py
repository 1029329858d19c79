"""A worker killed and restarted before it is marked down: its tasks come back to the job within seconds.

Real node processes on 127.0.0.1 (gaia_core.devnet). The worker forgets what it held; it is never
marked down (down_after_s is a minute), so only the submitter's adaptive due times bring the tasks back.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from nodes import call, kill, node_id, running_devnet, slow_tasks, submit, wait_job, wait_until

from gaia_core import devnet

pytest.importorskip("gaia_runner_wasm.workloads")


def test_tasks_held_by_a_worker_restarted_before_it_is_marked_down_come_back_promptly(tmp_path: Path) -> None:
    never_down = {"network": {"down_after_s": 60.0}}
    with running_devnet(tmp_path, 2, overrides={0: never_down, 1: never_down}) as (submitter, worker):
        job = submit(submitter, slow_tasks(node_id(submitter), 16, epochs=400))
        wait_until(lambda: call(worker, "status")["running"] >= 1, timeout=30, what="the worker to run a task",
                   interval=0.05)
        kill(worker)
        killed = time.monotonic()
        devnet.start_node(worker)
        status = wait_job(submitter, job, timeout=60)
        took = time.monotonic() - killed
        assert status["tasks"] == {"done": 16}
        assert took < 30, f"the job needed {took:.0f}s after the worker restarted (the fixed bound was 70 s)"
