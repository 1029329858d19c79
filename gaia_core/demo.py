"""The main job: federated training of the digits classifier on a local devnet.

Each round, the training set's shards go to the devnet as SGD WebAssembly
tasks (through node0, which dispatches them by benchmark and load); results
come back with proofs, are verified, and the submitter averages the models
(FedAvg, weighted by shard size). Batch inference tasks then score the
held-out set. The task modules and the dataset ship with gaia-runner-wasm.
"""

from __future__ import annotations

import importlib
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import attrs

from gaia_core import codec, devnet, report
from gaia_core.config import Home
from gaia_core.control import ControlClient
from gaia_core.errors import PluginError, TaskError
from gaia_core.identity import Identity
from gaia_core.model import Limits, TaskResult

#: Inference tasks that score the held-out set.
SCORE_TASKS = 3


@attrs.define
class Round:
    """What one round of federated training produced."""

    number: int
    loss: float
    accuracy: float
    seconds: float
    tasks: int


def workloads() -> Any:
    """The workload helpers of gaia-runner-wasm (the task modules and the dataset ship there)."""
    try:
        return importlib.import_module("gaia_runner_wasm.workloads")
    except ImportError:
        raise PluginError("the demo's WebAssembly workloads ship with gaia-runner-wasm",
                          hint="pip install gaia-runner-wasm") from None


def run_job(client: ControlClient, tasks: list, *, label: str, redundancy: int = 1, timeout: float = 120.0,
            progress: bool = True) -> list[TaskResult]:
    """Submit tasks as one job through a node, wait, and return their results in order."""
    from gaia_core.commands.jobs import decode_results, wait_for_job

    job = client.call("submit", tasks=[codec.encode(t) for t in tasks], name=label, redundancy=redundancy)
    wait_for_job(client, job, timeout=timeout, label=label, progress=progress)
    rows = decode_results(client.call("results", job=job, release=True))
    failed = [r for r in rows if r["result"] is None or not r["result"].ok]
    if failed:
        first = failed[0]
        raise TaskError(f"{len(failed)} of {len(rows)} {label} tasks failed: "
                        f"{first['reason'] or first['result'].message}")
    return [r["result"] for r in rows]


def federated_training(client: ControlClient, submitter: str, *, rounds: int, shards: int, epochs: int,
                       hidden: int, on_round: Callable[[Round], None], progress: bool = True) -> tuple[Any, list[Round]]:
    """Train by federated averaging through the node behind ``client``; return the model and the rounds."""
    w = workloads()
    train, test = w.load_digits().split(0.2, seed=0)
    parts = train.shards(shards)
    model = w.Mlp.init(w.DIGITS_FEATURES, hidden, w.DIGITS_CLASSES, seed=0)
    limits = Limits(timeout_s=30.0, memory_bytes=64 << 20)
    history = []
    for number in range(1, rounds + 1):
        started = time.monotonic()
        tasks = [w.train_task(model, p.x, p.y, epochs=epochs, batch_size=16, learning_rate=0.1, seed=number,
                              limits=limits, submitter=submitter, job=f"round-{number}") for p in parts]
        outputs = [w.decode_train(r.output, model) for r in
                   run_job(client, tasks, label=f"round {number} (train)", progress=progress)]
        model = w.average([m for m, _ in outputs], [len(p) for p in parts])
        loss = sum(loss * len(p) for (_, loss), p in zip(outputs, parts)) / len(train)
        acc = score(client, model, test, submitter, label=f"round {number} (score)", progress=progress)
        history.append(Round(number, loss, acc, time.monotonic() - started, len(tasks) + SCORE_TASKS))
        on_round(history[-1])
    return model, history


def score(client: ControlClient, model: Any, test: Any, submitter: str, *, label: str, progress: bool = True) -> float:
    """Held-out accuracy of ``model``, computed by batch inference tasks on the network."""
    w = workloads()
    batches = test.shards(SCORE_TASKS)
    tasks = [w.infer_task(model, b.x, submitter=submitter, job=label) for b in batches]
    results = run_job(client, tasks, label=label, progress=progress)
    predicted = [c for r in results for c in w.predictions(r.output, model.n_out)]
    labels = [y for b in batches for y in b.y]
    return w.accuracy(predicted, labels)


def run(directory: Path, *, nodes: int = 3, rounds: int = 6, shards: int = 6, epochs: int = 5, hidden: int = 32,
        plugins: str | None = None, echo: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Start a devnet, train, score, write the report, stop the devnet; return the summary."""
    workloads()  # fail before starting processes when the workloads are missing
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
        with ControlClient(home0, timeout=60.0) as client:
            def show(r: Round) -> None:
                echo(f"round {r.number}: loss {r.loss:.3f}  held-out accuracy {r.accuracy:.1%}  ({r.seconds:.1f}s)")

            _, history = federated_training(client, submitter, rounds=rounds, shards=shards, epochs=epochs,
                                            hidden=hidden, on_round=show, progress=progress)
            status = client.call("status")
        names = {devnet.status(h).get("node_id", ""): h.root.name for h in devnet.homes(directory)}
    finally:
        devnet.down(directory)
    summary = _summary(history, status, names, time.monotonic() - started)
    summary["report"] = str(write_report(directory, summary))
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


def write_report(directory: Path, summary: dict[str, Any]) -> Path:
    """Write report.md and report.svg into ``directory``; return the Markdown file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    accuracy = [r["accuracy"] for r in summary["rounds"]]
    work = {name: node["fuel"] / 1e9 for name, node in sorted(summary["per_node"].items())}
    (directory / "report.svg").write_text(report.svg(accuracy, work), encoding="utf-8")
    lines = ["# GAIA demo: federated training of the digits classifier", "",
             f"Final held-out accuracy **{summary['final_accuracy']:.1%}** in {summary['seconds']}s.", "",
             "![accuracy and work](report.svg)", "", "| round | loss | accuracy | seconds | tasks |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['number']} | {r['loss']:.4f} | {r['accuracy']:.1%} | {r['seconds']:.1f} | {r['tasks']} |"
              for r in summary["rounds"]]
    lines += ["", "| node | tasks | verified | gigafuel | credit |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {n['tasks']} | {n['verified']} | {n['fuel'] / 1e9:.3f} | {n['credit']:.4g} |"
              for name, n in sorted(summary["per_node"].items())]
    path = directory / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
