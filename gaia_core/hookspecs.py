"""The hook specifications: the whole contract between the kernel and its plugins.

Hooks are grouped by phase. Role hooks take no arguments and **yield** (or
return an iterable of) typed spec records from :mod:`gaia_core.roles`; the
kernel validates them, rejects duplicates naming both providers, and builds
providers only when needed. Plugins implement hooks with
``from gaia_core import hookimpl``. The reference in docs/plugin-authoring.md
is generated from these docstrings (``make docs``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from gaia_core.demo import FederatedWorkload
    from gaia_core.model import Envelope, NodeRecord, Task, TaskResult
    from gaia_core.roles import (
        BenchmarkSpec,
        NodeContext,
        ProverSpec,
        QueueSpec,
        RunnerSpec,
        TransportSpec,
    )

hookspec = pluggy.HookspecMarker("gaia")

# -------------------------------------------------------------------------
# Role hooks: register providers (called whenever the kernel lists them)
# -------------------------------------------------------------------------


@hookspec
def gaia_runners() -> Iterable[RunnerSpec]:
    """Register runners: providers that execute tasks of given kinds.

    :returns: an iterable of :class:`~gaia_core.roles.RunnerSpec`. Each names
        the ``task_kinds`` it runs (e.g. ``("wasm",)``) and a ``factory``
        taking a :class:`~gaia_core.roles.NodeContext` and returning a
        :class:`~gaia_core.roles.Runner`.

    Many runners may be active; the node dispatches each task by its
    ``task.kind``. Two active runners claiming the same kind is an error that
    names both plugins.

    Example::

        @hookimpl
        def gaia_runners():
            yield RunnerSpec(name="wasm", task_kinds=("wasm",), factory=WasmRunner)
    """


@hookspec
def gaia_benchmarks() -> Iterable[BenchmarkSpec]:
    """Register benchmark providers: measure capabilities and sample resources.

    :returns: an iterable of :class:`~gaia_core.roles.BenchmarkSpec` whose
        ``factory(context)`` returns a :class:`~gaia_core.roles.Benchmark`.

    Every active provider runs; their :class:`~gaia_core.model.BenchmarkReport`
    entries are merged (a later provider wins on the same measurement name).
    A provider may also offer ``meter()``, a context manager the node wraps
    around each task's run, yielding a list that holds one record with
    ``energy_j`` and ``energy_source`` ("measured" or "estimated") afterwards;
    the first provider that has it prices every task's energy.

    Example::

        @hookimpl
        def gaia_benchmarks():
            yield BenchmarkSpec(name="psutil", factory=PsutilBenchmark)
    """


@hookspec
def gaia_provers() -> Iterable[ProverSpec]:
    """Register provers under their proof scheme names.

    :returns: an iterable of :class:`~gaia_core.roles.ProverSpec` whose
        ``factory(context)`` returns a :class:`~gaia_core.roles.Prover`. Set
        ``simulated=True`` for a scheme that proves nothing cryptographically.

    The node proves with the one scheme named by ``[prover] scheme`` in its
    config, and verifies any proof whose ``proof.scheme`` a loaded plugin
    registers.

    Example::

        @hookimpl
        def gaia_provers():
            yield ProverSpec(scheme="mock-groth16", factory=MockProver, simulated=True)
    """


@hookspec
def gaia_transports() -> Iterable[TransportSpec]:
    """Register transports: how this node talks to its peers.

    :returns: an iterable of :class:`~gaia_core.roles.TransportSpec` whose
        ``factory(context)`` returns a :class:`~gaia_core.roles.Transport`.

    Exactly one transport is active. When two loaded plugins register one,
    the node refuses to start and names both; choose with ``--plugins`` or
    ``[plugins] load`` in the config.

    Example::

        @hookimpl
        def gaia_transports():
            yield TransportSpec(name="zmq", factory=ZmqTransport)
    """


@hookspec
def gaia_queues() -> Iterable[QueueSpec]:
    """Register task queues: admission, ordering and bounds before a runner.

    :returns: an iterable of :class:`~gaia_core.roles.QueueSpec` whose
        ``factory(context)`` returns a :class:`~gaia_core.roles.Queue`.

    Exactly one queue is active, chosen as for transports. The kernel runs
    its admission (:func:`gaia_core.admission.check`, the ``gaia_validate_task``
    hooks included) on every task before it calls the queue's ``admit``, so a
    queue only adds its own rules (bounds, replays); it may run the check
    again (cheap: signatures are checked once per envelope).

    Example::

        @hookimpl
        def gaia_queues():
            yield QueueSpec(name="memory", factory=MemoryQueue)
    """


# -------------------------------------------------------------------------
# Admission: extra rules any plugin may add
# -------------------------------------------------------------------------


@hookspec
def gaia_validate_task(task: Task, envelope: Envelope | None, context: NodeContext) -> None:
    """Check a task before it is queued; raise to refuse it.

    :param task: the task offered, after the kernel's own checks passed.
    :param envelope: the signed envelope it arrived in, or ``None`` when it
        was submitted locally.
    :param context: the node's context (config, home, identity).

    Raise :class:`~gaia_core.errors.RejectedError` with a machine-readable
    ``reason`` and a message the submitter can act on. Return ``None`` to
    accept. Every implementation is called; the first raise wins. Called
    from worker and network threads: keep it fast and thread-safe.

    Example::

        @hookimpl
        def gaia_validate_task(task, envelope, context):
            if task.kind == "wasm" and task.module is not None and not is_wasm(task.module):
                raise RejectedError("bad_module", "module is not WebAssembly")
    """


# -------------------------------------------------------------------------
# Lifecycle events (return values are ignored)
# -------------------------------------------------------------------------


@hookspec
def gaia_node_started(record: NodeRecord, context: NodeContext) -> None:
    """Called once the node is serving: providers built, transport up, workers running.

    :param record: the NodeRecord the node announces.
    :param context: the node's context.

    Called once per start, from the thread that starts the node.
    """


@hookspec
def gaia_node_stopping(context: NodeContext) -> None:
    """Called when the node begins to stop, before in-flight tasks drain.

    :param context: the node's context.

    Called once, first thing in the stop: new tasks are refused from then on;
    then dispatching stops, the queue closes (its queued tasks end
    ``cancelled``), running tasks drain and results are flushed, each firing
    ``gaia_task_finished``. The node's own tasks that the closing queue drops
    are not finished: they run after the next start.
    """


@hookspec
def gaia_task_finished(task: Task, result: TaskResult, context: NodeContext) -> None:
    """Called after a task this node admitted ends, in any status, once its result is final.

    :param task: the task, without its module bytes.
    :param result: its result: ``ok`` or a runner failure (``trap``,
        ``out_of_fuel``, ``timeout``, ...) for a task that ran, ``expired``
        for one whose deadline passed while queued, ``cancelled`` for one the
        queue dropped (e.g. closed while the node stops).
    :param context: the node's context.

    Fires exactly once per admitted task, once its result is on its way to
    the submitter. Called from worker and housekeeping threads; must not
    block for long. An exception is logged and does not affect the task.
    """


# -------------------------------------------------------------------------
# Workloads
# -------------------------------------------------------------------------


@hookspec
def gaia_workloads() -> Iterable[FederatedWorkload]:
    """Offer ready-made workloads that kernel tools submit to the network, such as ``gaia demo``'s job.

    :returns: an iterable of objects satisfying
        :class:`~gaia_core.demo.FederatedWorkload`, each with a ``name``;
        ``gaia demo`` trains the one named ``"digits-mlp"`` (gaia-runner-wasm
        offers it).

    Called by ``gaia demo`` in the submitting process, never by a running
    node. A workload builds the tasks (for a runner its plugin ships), holds
    the data and reads the tasks' outputs, so the kernel needs no plugin
    module. Shards and models are the workload's own values: the kernel only
    hands them back, and sizes shards with ``len``.

    Example::

        @hookimpl
        def gaia_workloads():
            yield DigitsMlp()
    """


# -------------------------------------------------------------------------
# Command line
# -------------------------------------------------------------------------


@hookspec
def gaia_register_commands(cli: click.Group) -> None:
    """Add commands or groups to the ``gaia`` command line.

    :param cli: the top-level :class:`click.Group`.

    Plugins load only when a command needs them, so ``gaia --help`` lists a
    plugin's commands only if the plugin names a light module implementing
    this hook (importing click and the plugin API, not its runtime) in the
    ``gaia.commands`` entry-point group, under the distribution's name, e.g.
    ``gaia-hello = "gaia_hello.commands"`` in
    ``[project.entry-points."gaia.commands"]``.

    A command name ``gaia`` does not know loads every selected plugin and
    calls this hook on each, so commands registered from the main module still
    run. Built-in command names cannot be replaced.

    Example::

        @hookimpl
        def gaia_register_commands(cli):
            @cli.command()
            def hello():
                "Say hello."
                click.echo("hello")
    """
