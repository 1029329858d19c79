"""The main job: federated training of the digits classifier on a local devnet.

Each round, the training set's shards go to the devnet as SGD WebAssembly
tasks (through node0, which dispatches them by benchmark and load); results
come back with proofs, are verified, and the submitter averages the models
(FedAvg, weighted by shard size). Batch inference tasks then score the
held-out set.

This module is library code: it imports neither the command line nor any
plugin. The tasks, the model and the data come from a
:class:`FederatedWorkload` that a plugin offers through the
``gaia_workloads`` hook (gaia-runner-wasm offers ``digits-mlp``); how to wait
for a job (quietly, or with a progress bar) is the caller's choice.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from pathlib import Path
from typing import Any, Protocol

import attrs
import pluggy

from gaia_core import codec, devnet, report
from gaia_core.config import Home
from gaia_core.control import ControlClient
from gaia_core.errors import PluginError, TaskError
from gaia_core.identity import Identity
from gaia_core.model import JobStatus, Limits, Task, TaskResult

#: The workload ``gaia demo`` trains.
WORKLOAD = "digits-mlp"
#: Inference tasks that score the held-out set.
SCORE_TASKS = 3
#: Seconds one job (a round's training, or its scoring) may take.
JOB_TIMEOUT_S = 120.0

#: Waits for a submitted job to end: (client, job id, label, timeout in seconds).
Waiter = Callable[[ControlClient, str, str, float], object]


class FederatedWorkload(Protocol):
    """A model trained by federated averaging, as a plugin offers it through ``gaia_workloads``.

    Shards and models are the provider's own values: the demo only hands them
    back and sizes shards with ``len``.
    """

    name: str

    def partition(self, train_shards: int, test_shards: int, *, seed: int) -> tuple[Sequence[Sized], Sequence[Sized]]:
        """The data split into training shards (one per task) and held-out shards."""
        ...

    def init_model(self, hidden: int, *, seed: int) -> Any:
        """A freshly initialised model with ``hidden`` hidden units."""
        ...

    def train_task(self, model: Any, shard: Any, *, epochs: int, seed: int, limits: Limits, submitter: str,
                   job: str) -> Task:
        """A task training ``model`` on ``shard`` for ``epochs``."""
        ...

    def read_trained(self, output: bytes, model: Any) -> tuple[Any, float]:
        """The trained model and its last mean loss, from a training task's output."""
        ...

    def average(self, models: Sequence[Any], weights: Sequence[float]) -> Any:
        """The weighted mean of ``models`` (federated averaging)."""
        ...

    def infer_task(self, model: Any, shard: Any, *, limits: Limits, submitter: str, job: str) -> Task:
        """A task predicting the classes of ``shard``'s samples with ``model``."""
        ...

    def correct(self, output: bytes, model: Any, shard: Any) -> int:
        """How many of ``shard``'s samples an inference task's output classifies correctly."""
        ...


@attrs.define
class Round:
    """What one round of federated training produced."""

    number: int
    loss: float
    accuracy: float
    seconds: float
    tasks: int


def find_workload(hook: pluggy.HookRelay, name: str = WORKLOAD) -> FederatedWorkload:
    """The workload called ``name`` offered by the active plugins, or a PluginError saying what to install."""
    offered: Iterable[FederatedWorkload] = (w for batch in hook.gaia_workloads() for w in batch or ())
    for workload in offered:
        if workload.name == name:
            return workload
    raise PluginError(f"no active plugin offers the workload {name!r} the demo trains",
                      hint="install gaia-runner-wasm (`pip install gaia-runner-wasm`) and keep it in --plugins")


def wait_quietly(client: ControlClient, job: str, label: str, timeout: float) -> object:
    """Block until ``job`` ends (the node's ``wait`` call); TaskError after ``timeout`` seconds."""
    status = client.call("wait", job=job, timeout=timeout)
    if status["status"] == JobStatus.RUNNING:
        raise TaskError(f"{label}: job {job} did not finish within {timeout:.0f}s",
                        hint="a slow or overloaded machine; try fewer --shards or --nodes")
    return status


def run_job(client: ControlClient, tasks: list[Task], *, label: str, wait: Waiter = wait_quietly,
            redundancy: int = 1) -> list[TaskResult]:
    """Submit tasks as one job through a node, wait, and return their results in order."""
    job = client.call("submit", tasks=[codec.encode(t) for t in tasks], name=label, redundancy=redundancy)
    wait(client, job, label, JOB_TIMEOUT_S)
    rows = client.call("results", job=job, release=True)
    results = [codec.decode(row["result"], TaskResult) if row["result"] else None for row in rows]
    failed = [(row, result) for row, result in zip(rows, results, strict=True) if result is None or not result.ok]
    if failed:
        row, result = failed[0]
        raise TaskError(f"{len(failed)} of {len(rows)} {label} tasks failed: "
                        f"{row['reason'] or (result.message if result else 'no result')}")
    return [r for r in results if r is not None]


def federated_training(client: ControlClient, workload: FederatedWorkload, submitter: str, *, rounds: int,
                       shards: int, epochs: int, hidden: int, on_round: Callable[[Round], None],
                       wait: Waiter = wait_quietly) -> tuple[Any, list[Round]]:
    """Train by federated averaging through the node behind ``client``; return the model and the rounds."""
    parts, held_out = workload.partition(shards, SCORE_TASKS, seed=0)
    sizes = [len(p) for p in parts]
    model = workload.init_model(hidden, seed=0)
    limits = Limits(timeout_s=30.0, memory_bytes=64 << 20)
    history = []
    for number in range(1, rounds + 1):
        started = time.monotonic()
        tasks = [workload.train_task(model, p, epochs=epochs, seed=number, limits=limits, submitter=submitter,
                                     job=f"round-{number}") for p in parts]
        results = run_job(client, tasks, label=f"round {number} (train)", wait=wait)
        outputs = [workload.read_trained(r.output, model) for r in results]
        model = workload.average([m for m, _ in outputs], sizes)
        loss = sum(loss * n for (_, loss), n in zip(outputs, sizes, strict=True)) / sum(sizes)
        acc = score(client, workload, model, held_out, submitter, label=f"round {number} (score)", wait=wait)
        history.append(Round(number, loss, acc, time.monotonic() - started, len(tasks) + len(held_out)))
        on_round(history[-1])
    return model, history


def score(client: ControlClient, workload: FederatedWorkload, model: Any, held_out: Sequence[Sized],
          submitter: str, *, label: str, wait: Waiter = wait_quietly) -> float:
    """Held-out accuracy of ``model``, computed by batch inference tasks on the network."""
    limits = Limits(timeout_s=30.0, memory_bytes=64 << 20)
    tasks = [workload.infer_task(model, b, limits=limits, submitter=submitter, job=label) for b in held_out]
    results = run_job(client, tasks, label=label, wait=wait)
    right = sum(workload.correct(r.output, model, b) for r, b in zip(results, held_out, strict=True))
    return right / max(1, sum(len(b) for b in held_out))


def run(directory: Path, workload: FederatedWorkload, *, nodes: int = 3, rounds: int = 6, shards: int = 6,
        epochs: int = 5, hidden: int = 32, plugins: str | None = None, echo: Callable[[str], None] = print,
        wait: Waiter = wait_quietly) -> dict[str, Any]:
    """Start a devnet, train ``workload``, score it, write the report, stop the devnet; return the summary."""
    if directory.exists():
        devnet.down(directory)
        shutil.rmtree(directory)
    started = time.monotonic()
    extra = {"verification": {"spot_check": 0.2}}
    try:
        echo(f"starting a devnet of {nodes} nodes in {directory} …")
        devnet.up(directory, nodes, cores=1, extra=extra, plugins=plugins)
        devnet.wait_for_peers(directory, nodes=nodes)
        home0 = Home(directory / "node0")
        submitter = Identity.load(home0.identity_dir).node_id
        with ControlClient(home0, timeout=JOB_TIMEOUT_S + 30.0) as client:
            def show(r: Round) -> None:
                echo(f"round {r.number}: loss {r.loss:.3f}  held-out accuracy {r.accuracy:.1%}  ({r.seconds:.1f}s)")

            _, history = federated_training(client, workload, submitter, rounds=rounds, shards=shards,
                                            epochs=epochs, hidden=hidden, on_round=show, wait=wait)
            status = client.call("status")
        names = {devnet.status(h).get("node_id", ""): h.root.name for h in devnet.homes(directory)}
    finally:
        devnet.down(directory)
    summary = _summary(history, status, names, time.monotonic() - started)
    summary["report"] = str(report.write(directory, summary))
    return summary


def _summary(history: list[Round], status: dict[str, Any], names: dict[str, str], seconds: float) -> dict[str, Any]:
    per_node = {}
    for row in status["rewards"]:
        if row["role"] == "granted":
            per_node[names.get(row["node_id"], row["node_id"][:12])] = {
                "tasks": row["tasks"], "verified": row["verified"], "fuel": row["fuel"], "credit": row["credit"]}
    return {
        "rounds": [attrs.asdict(r) for r in history],
        "final_accuracy": history[-1].accuracy if history else 0.0,
        "seconds": round(seconds, 1),
        "per_node": per_node,
        "verification": status["verification"],
    }
