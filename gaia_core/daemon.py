"""Node processes in the background: start one with its log in its home, wait until it serves."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gaia_core import logs
from gaia_core.config import Home
from gaia_core.control import ControlClient
from gaia_core.errors import NodeError

#: How long a node may take to benchmark, bind and open its control socket.
START_TIMEOUT_S = 60.0


def log_file(home: Home) -> Path:
    """Where a background node's JSON-lines log goes."""
    return home.log_file


def spawn(home: Home, args: list[str]) -> subprocess.Popen:
    """Run ``python -m gaia_core ARGS`` for ``home`` in its own session, logging to :func:`log_file`."""
    with logs.open_log(log_file(home)) as log:
        return subprocess.Popen([sys.executable, "-m", "gaia_core", *args], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "GAIA_HOME": str(home.root)})


def wait_ready(home: Home, proc: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
    """The node's status once its control socket answers; NodeError (and the process stopped) otherwise."""
    deadline = time.monotonic() + timeout
    try:
        since = log_file(home).stat().st_size  # this start's lines come after (Python takes far longer to start)
    except OSError:
        since = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            reason = logs.last_error(log_file(home), since=since)
            raise NodeError(f"the node in {home.root} exited during start-up (code {proc.returncode})"
                            + (f": {reason}" if reason else ""), hint=f"the whole log: `gaia logs` or {log_file(home)}")
        try:
            with ControlClient(home, timeout=2.0) as client:
                return client.call("status")
        except NodeError:
            time.sleep(0.2)
    proc.terminate()
    raise NodeError(f"the node in {home.root} did not start in {timeout:.0f}s",
                    hint=f"the whole log: `gaia logs` or {log_file(home)}")
