"""What the dashboard shows: the running node's control-socket answers, polled once per update.

The payloads are the node's own control methods (``status``, ``peers``, ``jobs``, ``rewards``,
``sample``), asked through :class:`~gaia_core.control.ControlClient` exactly as ``gaia status --json``,
``gaia peers --json``, ``gaia task list --json``, ``gaia rewards --json`` and ``gaia monitor --json`` ask
them, so the page and the command line show the same schemas. The resource and reward figures of each
update are kept (a bounded history) for the charts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from gaia_core.config import Home
from gaia_core.control import ControlClient
from gaia_core.dashboard.logtail import LogTail
from gaia_core.errors import NodeError
from gaia_core.logs import render

#: Chart points kept: ten minutes at one update per second.
HISTORY_POINTS = 600
#: Jobs of this node the page lists (``gaia task list --limit``).
JOBS_SHOWN = 20
#: Seconds one control call may take before the page says the node does not answer.
CALL_TIMEOUT_S = 10.0


class Unreachable(NodeError):
    """No node answers on the home's control socket."""


class NodeFeed:
    """Asks the node serving ``home`` for what the page shows, through its control socket."""

    def __init__(self, home: Home, logs: LogTail, *, history: int = HISTORY_POINTS) -> None:
        self.home = home
        self.logs = logs
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self._client: ControlClient | None = None
        self._lock = threading.Lock()

    def call(self, method: str, **params: Any) -> Any:
        """One control call: :class:`Unreachable` when no node answers (the next call connects again),
        NodeError when the node refused it."""
        with self._lock:
            client = self._connect()
            try:
                return client.call(method, **params)
            except NodeError:
                self._drop()  # a refusal or a lost connection: connect again to tell which
                self._connect()  # Unreachable when the node went away (not "lost the connection" as a refusal)
                raise

    def _connect(self) -> ControlClient:
        if self._client is None:
            try:
                self._client = ControlClient(self.home, timeout=CALL_TIMEOUT_S)
            except NodeError as exc:
                raise Unreachable(exc.message, hint=exc.hint) from None
        return self._client

    def snapshot(self) -> dict[str, Any]:
        """One update of the page: status, peers, jobs, the latest sample, a chart point and the log tail.

        When the node does not answer, ``error`` says why (and what to do) instead.
        """
        at = time.time()
        try:
            status = self.call("status")
            update = {"at": at, "status": status, "peers": self.call("peers"),
                      "jobs": self.call("jobs", limit=JOBS_SHOWN), "monitor": self.call("sample")}
        except NodeError as exc:
            return {"at": at, "error": str(exc), "logs": self.log_lines()}
        point = chart_point(at, update["monitor"], status["rewards"])
        self.history.append(point)
        return {**update, "point": point, "logs": self.log_lines()}

    def log_lines(self) -> list[str]:
        """The log tail as ``gaia logs`` prints it (``/api/logs`` has the JSON lines, as ``gaia logs --json``)."""
        return [render(line) for line in self.logs.lines()]

    def close(self) -> None:
        """Close the connection to the node."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def chart_point(at: float, monitor: dict[str, Any], rewards: list[dict[str, Any]]) -> dict[str, Any]:
    """The charts' figures at ``at``: CPU, RAM and GPU use (%), power (W), credit earned and granted so far."""
    sample = monitor.get("sample") or {}
    ram_used, ram_total = sample.get("ram_used_bytes"), sample.get("ram_total_bytes")
    credit = {role: sum(row["credit"] or 0.0 for row in rewards if row["role"] == role)
              for role in ("earned", "granted")}
    return {"at": at, "cpu": sample.get("cpu_percent"),
            "ram": 100.0 * ram_used / ram_total if ram_used is not None and ram_total else None,
            "gpu": sample.get("gpu_util_percent"), "power": sample.get("power_w"), **credit}
