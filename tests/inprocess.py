"""In-process nodes for seam tests: a real :class:`~gaia_core.node.Node` (real sockets on 127.0.0.1,
real SQLite, real signatures) built in the test's own process, with test plugins registered beside
the installed ones. Every node a helper starts is stopped by the context manager that started it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nodes import wait_until

from gaia_core import config as config_mod, devnet, hookimpl, plugins as plugins_mod
from gaia_core.config import Home
from gaia_core.identity import Identity
from gaia_core.model import NodeRecord, Status, Task, TaskResult
from gaia_core.node import Node
from gaia_core.roles import NodeContext, QueueStats

#: Proofs without the simulated proving delay, one core, a fast heartbeat.
BASE_TABLES: dict[str, dict[str, Any]] = {
    "zk_mock": {"simulate_time": False},
    "network": {"heartbeat_s": 0.5, "down_after_s": 3.0},
}


def make_home(root: Path, name: str, tables: Mapping[str, Mapping[str, Any]] | None = None) -> Home:
    """A node home under ``root`` with a fresh identity and a config listening on a free loopback port."""
    home = Home(root / name)
    home.root.mkdir(parents=True, exist_ok=True)
    if not Identity.exists(home.identity_dir):
        Identity.generate().save(home.identity_dir)
    merged: dict[str, dict[str, Any]] = {
        "node": {"name": name, "listen": f"tcp://127.0.0.1:{devnet.free_port()}", "cores": 1},
        **{k: dict(v) for k, v in BASE_TABLES.items()},
    }
    for table, values in (tables or {}).items():
        merged[table] = {**merged.get(table, {}), **values}
    home.config_file.write_text(config_mod.to_toml(merged), encoding="utf-8")
    return home


def load_plugins(*extra: tuple[object, str], without: tuple[str, ...] = ()) -> plugins_mod.Plugins:
    """The installed plugins except ``without`` (distribution names), plus ``extra`` (object, name) pairs."""
    names = [ep.name for ep in plugins_mod.installed() if plugins_mod.canonical_name(ep.name) not in without]
    loaded = plugins_mod.load(names, strict=True)
    for plugin, name in extra:
        loaded.register(plugin, name)
    return loaded


def build_node(home: Home, loaded: plugins_mod.Plugins) -> Node:
    """A node (not started) living in ``home`` with the plugins ``loaded``."""
    context = NodeContext(config=config_mod.load(home), home=home, identity=Identity.load(home.identity_dir),
                          hook=loaded.hook, log=logging.getLogger("gaia"),
                          task_kinds=frozenset(loaded.runners_by_kind()))
    return Node(context, loaded)


@contextmanager
def running(node: Node, *, drain_s: float = 10.0) -> Iterator[Node]:
    """Start ``node``; stop it (draining up to ``drain_s``) when the block ends."""
    node.start()
    try:
        yield node
    finally:
        node.stop(drain_s=drain_s)


class Recorder:
    """A plugin that records every lifecycle hook call it receives, in order (thread-safe)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []  # (hook, node id) for node hooks
        self.finished: list[tuple[Task, TaskResult]] = []
        self._lock = threading.Lock()

    @hookimpl
    def gaia_node_started(self, record: NodeRecord, context: NodeContext) -> None:
        with self._lock:
            self.events.append(("started", record.node_id))

    @hookimpl
    def gaia_node_stopping(self, context: NodeContext) -> None:
        with self._lock:
            self.events.append(("stopping", context.identity.node_id if context.identity else ""))

    @hookimpl
    def gaia_task_finished(self, task: Task, result: TaskResult, context: NodeContext) -> None:
        with self._lock:
            self.events.append(("finished", result.task_id))
            self.finished.append((task, result))

    def results(self) -> list[TaskResult]:
        """The results seen by ``gaia_task_finished`` so far."""
        with self._lock:
            return [result for _, result in self.finished]


def wait_for(predicate: Any, *, timeout: float, what: str, interval: float = 0.05) -> Any:
    """:func:`nodes.wait_until`, polling more often (in-process nodes answer in milliseconds)."""
    return wait_until(predicate, timeout=timeout, what=what, interval=interval)


class IdleQueue:
    """A test queue that never hands out a task; a subclass says what ``admit`` does."""

    def __init__(self, context: NodeContext) -> None:
        self._closed = threading.Event()

    def next(self, timeout: float | None = None) -> Task | None:
        self._closed.wait(timeout)
        return None

    def done(self, task_id: str, status: Status) -> bool:
        return False

    def cancel(self, task_id: str) -> bool:
        return False

    def take_dropped(self) -> list[TaskResult]:
        return []

    def stats(self) -> QueueStats:
        return QueueStats()

    def close(self) -> None:
        self._closed.set()
