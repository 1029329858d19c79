"""Benchmark the node end to end against dask.distributed and a process pool running the same WASM tasks.

Measures, each against its baselines in the same run:

* ``single node``: trivial ``echo`` WASM tasks through one real node process (offering 2 cores),
  submitted over its control socket and waited for: tasks/s for a job of N tasks, and p50/p99
  latency of one-task jobs submitted one after another (submit → job finished, waited for on the node). The same
  tasks run on ``dask.distributed`` ``LocalCluster(n_workers=2, threads_per_worker=1)`` and on
  ``concurrent.futures.ProcessPoolExecutor(2)``, each worker building the runner from the
  gaia-runner-wasm plugin once. Also reported: the node's own overhead per task, node p50 latency
  minus the bare runner's p50 time for the same task in this process.
* ``devnet``: 3 node processes on 127.0.0.1 (1 core each), small ``echo`` tasks dispatched by node0
  over ZeroMQ with CurveZMQ, signed envelopes and (simulated) proofs verified: tasks/s end to end
  (target ≥ 3,000/s), against dask's tasks/s from the first part.

Proving runs with ``[zk_mock] simulate_time = false``: the mock's sleep stands in for a real
prover's cost and is not node overhead. Usage: python benchmarks/bench_node.py [--tasks N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import importlib
import multiprocessing
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gaia_core import codec, devnet, plugins
from gaia_core.config import Config, Home
from gaia_core.control import ControlClient
from gaia_core.identity import Identity
from gaia_core.model import Task
from gaia_core.roles import NodeContext

FAST_PROVER = {"zk_mock": {"simulate_time": False}}
_RUNNER: Any = None


def make_runner() -> Any:
    """The wasm runner of the installed gaia-runner-wasm plugin, with a throw-away home."""
    loaded = plugins.load(None)
    home = Home(Path(tempfile.mkdtemp(prefix="gaia-bench-")))
    context = NodeContext(config=Config(), home=home, identity=None, hook=loaded.hook, task_kinds=frozenset({"wasm"}))
    return loaded.runners_by_kind()["wasm"].factory(context)


def run_task(frame: bytes) -> bytes:
    """Decode a task frame and run it on this process's runner (built on first use); return its output."""
    global _RUNNER
    if _RUNNER is None:
        warnings.simplefilter("ignore")
        _RUNNER = make_runner()
    result = _RUNNER.run(codec.decode(frame, Task))
    assert result.ok, result.message
    return result.output


def echo_tasks(count: int, submitter: str = "", tag: str = "") -> list[Task]:
    """``count`` distinct echo tasks of a few bytes each."""
    from gaia_runner_wasm import workloads

    module = workloads.module_bytes("echo")
    return [Task.create(module, entry="echo", input=f"{tag}{i}".encode(), submitter=submitter) for i in range(count)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def frames(tasks: list[Task]) -> list[bytes]:
    """The tasks as codec frames, as the baselines ship them to their workers."""
    return [codec.encode(t) for t in tasks]


def latencies(call_one: Callable[[Any], Any], tasks: list[Any]) -> list[float]:
    """Seconds per task when each is run alone, one after another."""
    out = []
    for task in tasks:
        started = time.perf_counter()
        call_one(task)
        out.append(time.perf_counter() - started)
    return out


# ----------------------------------------------------------------------------- the node


def node_job(client: ControlClient, tasks: list[Task]) -> float:
    """Submit ``tasks`` as one job and wait (server side) until it finishes; return the seconds it took."""
    frames = [codec.encode(t) for t in tasks]
    started = time.perf_counter()
    job = client.call("submit", tasks=frames, name="bench")
    status = client.call("wait", job=job, timeout=120.0)
    elapsed = time.perf_counter() - started
    assert status["tasks"] == {"done": len(tasks)}, status
    client.call("results", job=job, release=True)
    return elapsed


def bench_single_node(directory: Path, tasks: list[Task], singles: list[Task]) -> dict[str, Any]:
    """Throughput and sequential latency through one node offering 2 cores."""
    try:
        devnet.up(directory, 1, cores=2, extra=FAST_PROVER)
        with ControlClient(devnet.homes(directory)[0], timeout=120.0) as client:
            node_job(client, echo_tasks(50, tag="warm"))
            seconds = node_job(client, tasks)
            lat = latencies(lambda t: node_job(client, [t]), singles)
    finally:
        devnet.down(directory)
    return {"tps": len(tasks) / seconds, "lat": lat}


def bench_devnet(directory: Path, count: int) -> float:
    """Tasks/s of a job of ``count`` echo tasks through node0 of a 3-node devnet."""
    try:
        devnet.up(directory, 3, cores=1, extra=FAST_PROVER)
        devnet.wait_for_peers(directory)
        home = devnet.homes(directory)[0]
        submitter = Identity.load(home.identity_dir).node_id
        with ControlClient(home, timeout=120.0) as client:
            node_job(client, echo_tasks(300, submitter, tag="warm"))
            seconds = node_job(client, echo_tasks(count, submitter, tag="devnet"))
    finally:
        devnet.down(directory)
    return count / seconds


# ----------------------------------------------------------------------------- baselines


def worker_function() -> Callable[[bytes], bytes]:
    """:func:`run_task` from this file imported as a module, so workers unpickle it by reference."""
    return importlib.import_module(Path(__file__).stem).run_task


def bench_pool(tasks: list[bytes], singles: list[bytes]) -> dict[str, Any]:
    run_task = worker_function()
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(run_task, frames(echo_tasks(50, tag="warm"))))
        started = time.perf_counter()
        list(pool.map(run_task, tasks, chunksize=1))
        tps = len(tasks) / (time.perf_counter() - started)
        lat = latencies(lambda t: pool.submit(run_task, t).result(), singles)
    return {"tps": tps, "lat": lat}


def bench_dask(tasks: list[bytes], singles: list[bytes]) -> dict[str, Any] | None:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        return None
    run_task = worker_function()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.gather(client.map(run_task, frames(echo_tasks(50, tag="warm")), pure=False))
        started = time.perf_counter()
        client.gather(client.map(run_task, tasks, pure=False))
        tps = len(tasks) / (time.perf_counter() - started)
        lat = latencies(lambda t: client.submit(run_task, t, pure=False).result(), singles)
    return {"tps": tps, "lat": lat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per throughput job (default 2000)")
    parser.add_argument("--singles", type=int, default=200, help="one-task jobs for latency (default 200)")
    parser.add_argument("--devnet-tasks", type=int, default=6000, help="tasks of the devnet job (default 6000)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    progress = functools.partial(print, file=sys.stderr, flush=True)

    tasks, singles = echo_tasks(args.tasks, tag="job"), echo_tasks(args.singles, tag="single")
    with tempfile.TemporaryDirectory(prefix="gaia-bench-node-") as tmp:
        # dask first, from a fresh process: its workers started after the other phases sometimes hang
        progress("dask LocalCluster …")
        dask = bench_dask(frames(tasks), frames(singles))
        progress("ProcessPoolExecutor(2) …")
        pool = bench_pool(frames(tasks), frames(singles))
        progress("single node …")
        node = bench_single_node(Path(tmp) / "single", tasks, singles)
        progress("devnet of 3 …")
        devnet_tps = bench_devnet(Path(tmp) / "devnet", args.devnet_tasks)
    # built last: the baselines' worker processes may be forked, and a forked wasmtime engine can hang
    runner = make_runner()
    runner.run(echo_tasks(1, tag="warm")[0])
    bare = latencies(runner.run, echo_tasks(args.singles, tag="bare"))
    runner.close()

    node_p50, node_p99 = percentile(node["lat"], 0.5), percentile(node["lat"], 0.99)
    bare_p50 = percentile(bare, 0.5)
    print(f"single node tasks/s (vs ProcessPoolExecutor(2)): gaia={node['tps']:.0f} baseline={pool['tps']:.0f} "
          f"ratio={node['tps'] / pool['tps']:.2f}")
    print(f"single node p50 latency ms (vs ProcessPoolExecutor(2)): gaia={node_p50 * 1e3:.3f} "
          f"baseline={percentile(pool['lat'], 0.5) * 1e3:.3f} ratio={node_p50 / percentile(pool['lat'], 0.5):.2f}")
    print(f"single node p99 latency ms (vs ProcessPoolExecutor(2)): gaia={node_p99 * 1e3:.3f} "
          f"baseline={percentile(pool['lat'], 0.99) * 1e3:.3f} ratio={node_p99 / percentile(pool['lat'], 0.99):.2f}")
    print(f"node overhead per task p50 ms (node p50 - bare runner p50): gaia={(node_p50 - bare_p50) * 1e3:.3f} "
          f"baseline={bare_p50 * 1e3:.3f} ratio={(node_p50 - bare_p50) / bare_p50:.2f}")
    if dask is None:
        print("dask baseline missing: dask.distributed is not installed (pip install -e '.[bench]')")
        print(f"devnet 3 nodes tasks/s: gaia={devnet_tps:.0f} (target 3000; no dask baseline)")
        return
    dask_p50, dask_p99 = percentile(dask["lat"], 0.5), percentile(dask["lat"], 0.99)
    print(f"single node tasks/s (vs dask LocalCluster 2x1): gaia={node['tps']:.0f} baseline={dask['tps']:.0f} "
          f"ratio={node['tps'] / dask['tps']:.2f}")
    print(f"single node p50 latency ms (vs dask LocalCluster 2x1): gaia={node_p50 * 1e3:.3f} "
          f"baseline={dask_p50 * 1e3:.3f} ratio={node_p50 / dask_p50:.2f}")
    print(f"single node p99 latency ms (vs dask LocalCluster 2x1): gaia={node_p99 * 1e3:.3f} "
          f"baseline={dask_p99 * 1e3:.3f} ratio={node_p99 / dask_p99:.2f}")
    print(f"devnet 3 nodes tasks/s (vs dask LocalCluster 2x1; target 3000): gaia={devnet_tps:.0f} "
          f"baseline={dask['tps']:.0f} ratio={devnet_tps / dask['tps']:.2f}")


if __name__ == "__main__":
    main()
