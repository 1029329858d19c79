"""Peers that accept offers and never answer lose their slots within seconds (real in-process nodes on 127.0.0.1).

Three workers run a queue plugin that takes every task and never hands one out (a black hole). The
submitter could run the job itself: it must finish long before the fixed bound of the past
(2 x timeout + 10 s = 70 s for the default limits), with the black holes struck and ranked down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import IdleQueue, build_node, load_plugins, make_home, running, wait_for
from nodes import echo_tasks

from gaia_core import hookimpl
from gaia_core.model import Envelope, Task
from gaia_core.roles import QueueSpec

pytest.importorskip("gaia_runner_wasm.workloads")


class BlackHole(IdleQueue):
    """A queue that accepts every task and never hands one out."""

    def admit(self, task: Task, *, envelope: Envelope | None = None) -> str:
        return task.id



class BlackHolePlugin:
    @hookimpl
    def gaia_queues(self) -> Iterator[QueueSpec]:
        yield QueueSpec(name="black-hole", factory=BlackHole)


def test_a_job_completes_in_seconds_while_silent_peers_hold_offers(tmp_path: Path) -> None:
    submitter = build_node(make_home(tmp_path, "submitter"), load_plugins())
    with running(submitter, drain_s=2.0):
        holes = [build_node(make_home(tmp_path, f"hole{i}", {"network": {"bootstrap": [submitter.address]}}),
                            load_plugins((BlackHolePlugin(), "black-hole"), without=("gaia-queue-memory",)))
                 for i in range(3)]
        for hole in holes:
            hole.start()
        try:
            wait_for(lambda: all(h.node_id in submitter.peer_records for h in holes), timeout=30,
                     what="the silent peers to be known")
            started = time.monotonic()
            job = submitter.jobs.submit(echo_tasks([f"silent {i}".encode() for i in range(40)], submitter.node_id))
            status = submitter.jobs.wait_job(job, timeout=45)
            took = time.monotonic() - started
        finally:
            for hole in holes:
                hole.stop(drain_s=0.2)
        assert status["tasks"] == {"done": 40}, status
        assert took < 30, f"the job took {took:.1f}s"
        struck = {h.node_id: submitter.jobs.dispatcher.peers[h.node_id].strikes for h in holes}
        assert all(strikes >= 1 for strikes in struck.values()), struck
        rows = submitter.jobs.job_results(job)
        assert {r["peers"] for r in rows} == {submitter.node_id}
