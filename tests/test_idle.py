"""Run only when idle (``[node] busy_percent``): tasks wait while other programs keep the machine busy.

The watch is tested with an injected clock and CPU counter; the node's side in an in-process node whose watch
is fed samples by the test (the benchmark role feeds it in production), with a recording plugin.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from inprocess import Recorder, build_node, load_plugins, make_home, running, wait_for
from nodes import echo_tasks

from gaia_core.errors import RejectedError
from gaia_core.idle import HOLD_S, IdleWatch

pytest.importorskip("gaia_runner_wasm.workloads")

OTHER = "cd" * 32  # a peer's node id


class Clock:
    """A settable monotonic clock and this process's CPU seconds."""

    def __init__(self) -> None:
        self.now, self.cpu = 1000.0, 0.0

    def tick(self, seconds: float, own_cpu: float = 0.0) -> None:
        self.now += seconds
        self.cpu += own_cpu


def watch(busy_percent: int, clock: Clock, cpus: int = 2) -> IdleWatch:
    return IdleWatch(busy_percent, cpus=cpus, clock=lambda: clock.now, own_cpu=lambda: clock.cpu)


def test_others_over_the_threshold_make_it_busy_for_the_hold_time() -> None:
    clock = Clock()
    idle = watch(50, clock)
    assert idle.observe(90.0) is None and not idle.busy()  # the first sample only sets the baseline
    clock.tick(1.0)
    assert idle.observe(90.0) is True and idle.busy() and idle.others_percent == 90.0
    clock.tick(1.0)
    assert idle.observe(10.0) is None and idle.busy()  # held: a load that comes and goes does not flap
    clock.tick(HOLD_S)
    assert idle.observe(10.0) is False and not idle.busy()


def test_the_nodes_own_cpu_is_not_counted_as_busy() -> None:
    clock = Clock()
    idle = watch(50, clock, cpus=2)
    idle.observe(0.0)
    clock.tick(1.0, own_cpu=1.6)  # the node used 80 % of the machine's 2 cores itself
    assert idle.observe(90.0) is None and not idle.busy()
    assert idle.others_percent == pytest.approx(10.0)


@pytest.mark.parametrize("sample", [90.0, None])
def test_off_or_without_a_reading_it_never_waits(sample: float | None) -> None:
    clock = Clock()
    for idle in (watch(0, clock), watch(50, clock)):
        for _ in range(3):
            clock.tick(1.0)
            idle.observe(sample if idle.busy_percent == 0 else None)
        assert not idle.busy()


def test_a_busy_node_refuses_peers_and_holds_its_own_tasks_until_idle(tmp_path: Path) -> None:
    recorder, clock = Recorder(), Clock()
    node = build_node(make_home(tmp_path, "idle", {"node": {"busy_percent": 50}}),
                      load_plugins((recorder, "recorder")))
    assert node.idle.busy_percent == 50
    node.idle = watch(50, clock)
    with running(node, drain_s=5.0):
        node.idle.observe(95.0)
        clock.tick(1.0)
        node.idle.observe(95.0)
        assert node.status()["busy"]["waiting"] is True
        (peer_task,) = echo_tasks([b"from a peer"], OTHER)
        with pytest.raises(RejectedError, match="runs only when its machine is idle"):
            node.admit(peer_task, origin=OTHER)
        (own,) = echo_tasks([b"own"], node.node_id)
        node.admit(own, origin=node.node_id)  # queued, not run while the machine is busy
        wait_for(lambda: node.queue.stats().depth == 1, timeout=10, what="the node's own task to be queued")
        assert recorder.results() == []
        clock.tick(HOLD_S + 1.0)
        node.idle.observe(5.0)
        wait_for(lambda: recorder.results(), timeout=30, what="the task to run once the machine is idle")
        assert node.status()["busy"]["waiting"] is False
