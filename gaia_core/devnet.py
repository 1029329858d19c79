"""A local development network: N real node processes on 127.0.0.1.

Each node has its own home (``<dir>/node<i>``) with its own keys, config and
port, and every node bootstraps to the first one, at the dial address that
node's transport reports once it serves (the devnet knows no address format).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gaia_core import config as config_mod, daemon
from gaia_core.config import Home
from gaia_core.control import ControlClient
from gaia_core.errors import NodeError, UsageError
from gaia_core.identity import Identity


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def homes(directory: Path) -> list[Home]:
    """The homes of the devnet's nodes, in order."""
    found = sorted(directory.glob("node[0-9]*"), key=lambda p: int(p.name[4:]))
    return [Home(p) for p in found]


def up(directory: Path, nodes: int, *, cores: int = 1, extra: Mapping[str, Mapping[str, Any]] | None = None,
       plugins: str | None = None,
       overrides: Mapping[int, Mapping[str, Mapping[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Start ``nodes`` node processes; return each one's status once all are serving.

    ``extra`` adds config tables to every node; ``overrides[i]`` is merged into node ``i``'s tables last.
    """
    if nodes < 1:
        raise UsageError("a devnet needs at least one node")
    if any(_pid(h) for h in homes(directory)):
        raise NodeError(f"a devnet is already running in {directory}", hint="stop it with `gaia devnet down`")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return _start_all(directory, nodes, cores=cores, extra=extra, plugins=plugins, overrides=overrides)
    except BaseException:  # Ctrl-C, or a node that failed to start: stop the ones started (their own sessions)
        stopped = down(directory)
        if stopped:
            sys.stderr.write(f"stopped the {stopped} node(s) it had started\n")
        raise


def _start_all(directory: Path, nodes: int, *, cores: int, extra: Mapping[str, Mapping[str, Any]] | None,
               plugins: str | None, overrides: Mapping[int, Mapping[str, Mapping[str, Any]]] | None
               ) -> list[dict[str, Any]]:
    bootstrap: list[str] = []
    ready: list[dict[str, Any]] = []
    procs = []
    for i in range(nodes):
        home = Home(directory / f"node{i}")
        if not Identity.exists(home.identity_dir):
            Identity.generate().save(home.identity_dir)
        port = free_port()
        tables: dict[str, Any] = {
            "node": {"name": f"node{i}", "listen": f"tcp://127.0.0.1:{port}", "cores": cores},
            "network": {"bootstrap": bootstrap, "heartbeat_s": 0.5, "down_after_s": 3.0},
            **(extra or {}),
        }
        for table, values in (overrides or {}).get(i, {}).items():
            tables[table] = {**tables.get(table, {}), **values}
        home.root.mkdir(parents=True, exist_ok=True)
        home.config_file.write_text(config_mod.to_toml(tables), encoding="utf-8")
        if i > 0:
            _share_cache(Home(directory / "node0"), home)
        proc = _spawn(home, plugins)
        if i == 0:  # the others start in parallel once the first serves and says how to dial it
            ready.append(daemon.wait_ready(home, proc))
            bootstrap = [ready[0]["address"]]
        else:
            procs.append((home, proc))
    return ready + [daemon.wait_ready(home, proc) for home, proc in procs]


def _share_cache(first: Home, home: Home) -> None:
    """Copy the files at the top of the first node's cache (its benchmark report) that ``home`` lacks.

    The nodes of a devnet run on one machine: measuring it again in each, all at once on shared cores,
    takes longer and gives worse figures. A plugin re-measures when the report was made under another
    configuration (a node with its own ``[node] cores``, say).
    """
    try:
        files = [path for path in first.cache_dir.iterdir() if path.is_file()]
        home.cache_dir.mkdir(parents=True, exist_ok=True)
        for path in files:
            if not (home.cache_dir / path.name).exists():
                shutil.copy2(path, home.cache_dir / path.name)
    except OSError:  # a cache is an optimisation: the node measures for itself
        return


def start_node(home: Home, *, plugins: str | None = None) -> dict[str, Any]:
    """Start one node of an existing devnet again (same config, keys and port); return its status."""
    if _pid(home):
        raise NodeError(f"the node in {home.root} is already running", hint="stop it with `gaia devnet down`")
    if not home.config_file.exists():
        raise UsageError(f"{home.root} is not a devnet node's home", hint="start a devnet with `gaia devnet up`")
    return daemon.wait_ready(home, _spawn(home, plugins))


def _spawn(home: Home, plugins: str | None) -> subprocess.Popen:
    args = ["--home", str(home.root), *(["--plugins", plugins] if plugins is not None else []), "node"]
    proc = daemon.spawn(home, args)
    (home.root / "node.pid").write_text(str(proc.pid))
    return proc


def wait_for_peers(directory: Path, *, nodes: int | None = None, timeout: float = 30.0) -> None:
    """Block until each of the first ``nodes`` nodes (default: all) sees every other one up."""
    all_homes = homes(directory)[:nodes]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [status(h).get("peers", {}).get("up", 0) for h in all_homes]
        if all(c >= len(all_homes) - 1 for c in counts):
            return
        time.sleep(0.2)
    raise NodeError(f"devnet nodes did not all find each other in {timeout:.0f}s",
                    hint=f"see {directory}/node*/node.log")


def status(home: Home) -> dict[str, Any]:
    """A node's status, or ``{"state": "down"}`` when it does not answer."""
    try:
        with ControlClient(home, timeout=5.0) as client:
            return {"state": "up", **client.call("status")}
    except NodeError:
        return {"state": "down", "home": str(home.root)}


def _pid(home: Home) -> int | None:
    """The pid of the node running for ``home``; None when its pid file is absent or stale."""
    try:
        pid = int((home.root / "node.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) and _runs_node_of(pid, home) else None


def _runs_node_of(pid: int, home: Home) -> bool:
    """False when ``pid`` runs something other than ``home``'s node (a node killed with -9 left its pid file,
    and the pid went to another program); True when it is that node, or when the system cannot tell."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: trust the pid file
    except OSError:
        return True
    if not any(arg == b"gaia_core" or arg.endswith(b"/gaia") for arg in argv[:3]):
        return False  # not GAIA at all
    if b"--home" not in argv[:-1]:
        return True  # a node started by hand, its home in the environment
    given = Path(os.fsdecode(argv[argv.index(b"--home") + 1]))
    try:  # a relative --home is relative to that process's working directory
        return os.path.samefile(Path(f"/proc/{pid}/cwd") / given, home.root)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it was our child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def down(directory: Path, *, timeout: float = 20.0) -> int:
    """Stop every node of the devnet (SIGTERM, then SIGKILL after ``timeout``); return how many ran."""
    pids = [(h, _pid(h)) for h in homes(directory)]
    running = [(h, pid) for h, pid in pids if pid]
    for _home, pid in running:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for home, pid in running:
        while time.monotonic() < deadline and _alive(pid):  # the node removes its pid file before it exits
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        (home.root / "node.pid").unlink(missing_ok=True)
    return len(running)
