"""A node running its own job tops its queue up in rounds: not one dispatch round per result it finishes."""

from __future__ import annotations

from pathlib import Path

import pytest
from inprocess import build_node, load_plugins, make_home, running
from nodes import echo_tasks

pytest.importorskip("gaia_runner_wasm.workloads")


def test_own_results_wake_the_dispatcher_once_a_quarter_of_its_queue_came_back(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    home = make_home(tmp_path, "solo", {"node": {"cores": 2}})
    with running(build_node(home, load_plugins()), drain_s=2.0) as node:
        rounds: list[int] = []
        dispatch = node.jobs.dispatcher.dispatch
        monkeypatch.setattr(node.jobs.dispatcher, "dispatch",
                            lambda candidates: rounds.append(1) or dispatch(candidates))
        tasks = echo_tasks([f"wake {i}".encode() for i in range(600)], node.node_id)
        job = node.jobs.submit(tasks, name="wakes")
        assert node.jobs.wait_job(job, timeout=60)["tasks"] == {"done": 600}
    # one round per result woken would be about 600; a round per quarter of the queue plus one per 50 ms is far fewer
    assert len(rounds) < 200, len(rounds)
