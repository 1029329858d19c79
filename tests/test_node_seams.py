"""The seams between a running node and its plugins, observed by a recording plugin in an in-process node.

Lifecycle hooks fire on their own (the test never calls them), ``gaia_task_finished`` fires once for every
final status (ok, a runner failure, expired, cancelled), per-task energy is measured when RAPL counters
are readable, and ``[runner_wasm] disk_cache = false`` lets offers omit modules the worker holds in memory.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import Recorder, build_node, load_plugins, make_home, running, wait_for
from nodes import echo_tasks, slow_tasks

from gaia_core.model import Limits, Status, Task

workloads = pytest.importorskip("gaia_runner_wasm.workloads")

#: A submitter that is never reachable: results for it wait in the worker's outbox.
ABSENT = "cd" * 32


def test_lifecycle_hooks_and_every_finished_status_are_observed(tmp_path: Path) -> None:
    recorder = Recorder()
    node = build_node(make_home(tmp_path, "seams"), load_plugins((recorder, "recorder")))
    with running(node, drain_s=5.0):
        first_blocker, second_blocker, cancelled = slow_tasks(ABSENT, 3, epochs=1500)
        (ok,) = echo_tasks([b"fine"], ABSENT)
        starved = workloads.train_task(*_tiny_training(), epochs=50, seed=99, submitter=ABSENT,
                                       limits=Limits(fuel=1000))
        node.admit(first_blocker, origin=ABSENT)
        wait_for(lambda: node._running, timeout=30, what="the first blocker to start")
        expiring = Task.create(workloads.module_bytes("echo"), entry="echo", input=b"too late",
                               submitter=ABSENT, deadline=time.time() + 0.2)
        for task in (expiring, ok, starved):  # queued behind the blocker: the deadline passes first
            node.admit(task, origin=ABSENT)
        wait_for(lambda: len(recorder.results()) >= 4, timeout=60, what="four tasks to finish")
        node.admit(second_blocker, origin=ABSENT)
        node.admit(cancelled, origin=ABSENT)  # still queued when the node stops
        wait_for(lambda: node._running, timeout=30, what="the second blocker to start")

    hooks = [name for name, _ in recorder.events]
    assert hooks[0] == "started" and hooks.count("started") == 1 and hooks.count("stopping") == 1
    assert recorder.events[0][1] == node.node_id
    status = {result.task_id: result.status for result in recorder.results()}
    assert status[first_blocker.id] is Status.OK and status[ok.id] is Status.OK
    assert status[second_blocker.id] is Status.OK  # running at the stop: drained
    assert status[starved.id] is Status.OUT_OF_FUEL
    assert status[expiring.id] is Status.EXPIRED
    assert status[cancelled.id] is Status.CANCELLED
    assert hooks.index("stopping") < [task_id for _, task_id in recorder.events].index(cancelled.id)
    assert Counter(result.task_id for result in recorder.results()) == Counter(status.keys())  # once each
    assert all(task.module is None for task, _ in recorder.finished)


def _tiny_training() -> tuple[object, object, object]:
    shard = workloads.load_digits().shards(12)[0]
    model = workloads.Mlp.init(workloads.DIGITS_FEATURES, 8, workloads.DIGITS_CLASSES)
    return model, shard.x, shard.y


@pytest.fixture
def fake_rapl(tmp_path: Path) -> Iterator[Path]:
    """A powercap tree whose package counter advances 1 J every 5 ms while the test runs."""
    zone = tmp_path / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "max_energy_range_uj").write_text(f"{1 << 40}\n")
    counter = zone / "energy_uj"
    counter.write_text("0\n")
    staged = zone / "energy_uj.next"
    stop = threading.Event()

    def tick() -> None:
        for step in range(1, 60_000):  # at most 5 minutes
            if stop.wait(0.005):
                return
            staged.write_text(f"{step * 1_000_000}\n")
            staged.replace(counter)  # atomic, as a sysfs read is: a reader never sees a half-written number

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    yield zone.parent
    stop.set()
    ticker.join(timeout=5)


def _run_one(node_home_root: Path, name: str, tables: dict) -> list:
    recorder = Recorder()
    node = build_node(make_home(node_home_root, name, tables), load_plugins((recorder, "recorder")))
    with running(node, drain_s=5.0):
        (task,) = slow_tasks(ABSENT, 1, epochs=200)
        node.admit(task, origin=ABSENT)
        wait_for(recorder.results, timeout=60, what="the task to finish")
    return recorder.results()


def test_energy_is_measured_per_task_from_rapl_counters(tmp_path: Path, fake_rapl: Path) -> None:
    (result,) = _run_one(tmp_path, "rapl", {"bench-psutil": {"powercap_root": str(fake_rapl)}})
    assert result.status is Status.OK
    assert result.energy_source == "measured" and result.energy_j > 0


def test_energy_without_rapl_is_reported_as_estimated(tmp_path: Path) -> None:
    (tmp_path / "no-powercap").mkdir()
    (result,) = _run_one(tmp_path, "estimate", {"bench-psutil": {"powercap_root": str(tmp_path / "no-powercap")}})
    assert result.energy_source == "estimated" and result.energy_j > 0


def test_disk_cache_off_lets_offers_omit_modules_the_worker_holds(tmp_path: Path) -> None:
    worker = build_node(make_home(tmp_path, "worker", {"runner_wasm": {"disk_cache": False}}), load_plugins())
    with running(worker, drain_s=5.0):
        submitter = build_node(make_home(tmp_path, "submitter", {"network": {"bootstrap": [worker.address]}}),
                               load_plugins())
        with running(submitter, drain_s=5.0):
            wait_for(lambda: worker.node_id in submitter.peer_records, timeout=30, what="the peers to meet")
            tasks = echo_tasks([f"held in memory {i}".encode() for i in range(24)], submitter.node_id)
            job = submitter.jobs.submit(tasks, to=worker.node_id)
            wait_for(lambda: submitter.jobs.job_status(job)["status"] == "finished", timeout=60, what="the job")
            counts = {state: n for state, n in submitter.jobs.job_status(job)["tasks"].items() if n}
            assert counts == {"done": len(tasks)}
        worker.store.flush()
        # 24 tasks take several offers (a one-core worker holds a few at a time); all but the first
        # omit the module, and the worker, holding it in memory only, took every one of them
        assert worker.store.stats().get("rejected.bad_module", 0) == 0
        assert not list((worker.context.home.cache_dir / "wasm").glob("*.cwasm"))  # nothing on disk
