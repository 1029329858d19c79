"""``gaia doctor``: explain why this node gets no work or cannot reach peers."""

from __future__ import annotations

import errno
import socket
from typing import Any
from urllib.parse import urlsplit

import click

from gaia_core.console import print_json
from gaia_core.control import ControlClient
from gaia_core.envelope import DEFAULT_WINDOW_S
from gaia_core.errors import GaiaError, NodeError
from gaia_core.identity import Identity
from gaia_core.model import Limits
from gaia_core.state import State

#: Seconds each peer probe may take per step (connect, handshake, hello).
PROBE_TIMEOUT_S = 3.0
#: Kernel refusal reasons that mean a peer's clock and this node's differ.
CLOCK_REASONS = ("stale", "bad_time")


class Checks(list[dict[str, Any]]):
    """The checks made so far, each with its outcome (ok, warn, fail) and what to do about it."""

    def add(self, name: str, outcome: str, detail: str, fix: str = "") -> None:
        """Record one check."""
        self.append({"check": name, "outcome": outcome, "detail": detail, "fix": fix})


def endpoint_of(address: str) -> str:
    """The part of a peer address before any ``#key``: what identifies where it listens."""
    return address.strip().partition("#")[0]


def port_taken(listen: str) -> str | None:
    """Why a node could not bind ``listen`` (``tcp://HOST:PORT``) now, or None when it could (or cannot tell)."""
    parts = urlsplit(listen)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "tcp" or not port:
        return None
    host = "" if parts.hostname in (None, "*", "0.0.0.0") else parts.hostname
    with socket.socket(socket.AF_INET6 if host and ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} is taken: another program listens on {parts.netloc}"
    return None


def _probe(checks: Checks, transport: Any, name: str, address: str) -> None:
    probe = getattr(transport, "probe", None)  # optional for a transport: not in its protocol
    if probe is None:
        checks.add(name, "warn", f"{address}: this transport cannot probe peers", "see the node's log")
        return
    found = probe(address, timeout=PROBE_TIMEOUT_S, window_s=DEFAULT_WINDOW_S)
    checks.add(name, found["outcome"], f"{address}: {found['detail']}", found["fix"])


def _peer_checks(checks: Checks, transport: Any, bootstrap: list[str], status: dict[str, Any] | None,
                 peers: list[dict[str, Any]]) -> None:
    """Peers known to the running node, and a probe of each configured or known peer that is not up."""
    up = [p for p in peers if p["state"] == "up"]
    down = [p for p in peers if p["state"] != "up"]
    if status is not None:
        if down:
            names = ", ".join(f"{p['node_id'][:12]} ({p['state']})" for p in down)
            checks.add("peers", "fail" if not up else "warn", f"{len(up)} up of {len(peers)}; not up: {names}",
                       "each is probed below")
        elif up:
            checks.add("peers", "ok", f"{len(up)} up of {len(peers)}")
        else:
            checks.add("peers", "fail", "no peer is known" + ("" if bootstrap else " and no bootstrap address"),
                       "" if bootstrap else "set [network] bootstrap to a peer's address (tcp://HOST:PORT#KEY)")
    reached = {endpoint_of(p["address"]) for p in up}
    targets = [a for a in bootstrap if endpoint_of(a) not in reached]
    targets += [p["address"] for p in down if endpoint_of(p["address"]) not in {endpoint_of(a) for a in targets}]
    for address in targets:
        _probe(checks, transport, f"peer {endpoint_of(address)}", address)


def _clock_checks(checks: Checks, status: dict[str, Any], peers: list[dict[str, Any]]) -> None:
    refused = {reason: n for reason, n in status.get("refused", {}).get("kernel", {}).items()
               if reason in CLOCK_REASONS and n}
    if refused:
        senders = [p["node_id"][:12] for p in peers if any(p.get("refused", {}).get(r) for r in CLOCK_REASONS)]
        checks.add("clock", "warn", f"refused {sum(refused.values())} messages outside ±{DEFAULT_WINDOW_S:.0f}s of "
                   "this machine's clock" + (f" (from {', '.join(senders)})" if senders else ""),
                   "sync this machine's and the peers' clocks (NTP)")
    else:
        checks.add("clock", "ok", f"no message refused for its time (window ±{DEFAULT_WINDOW_S:.0f}s)")


def diagnose(state: State) -> list[dict[str, Any]]:
    """Every check with its outcome (ok, warn, fail) and what to do about it."""
    checks = Checks()
    try:
        identity = Identity.load(state.home.identity_dir)
        checks.add("keys", "ok", f"node id {identity.node_id[:16]}…")
    except GaiaError as exc:
        checks.add("keys", "fail", exc.message, exc.hint or "run `gaia init`")
        return checks
    try:
        config = state.config()
        config_file = state.home.config_file
        checks.add("config", "ok", str(config_file) if config_file.exists() else "defaults (no config.toml)")
    except GaiaError as exc:
        checks.add("config", "fail", exc.message, exc.hint or "")
        return checks
    transport: Any = None
    try:
        loaded = state.plugins()
        for info in loaded.infos.values():
            if info.status == "failed":
                checks.add(f"plugin {info.name}", "fail", info.error or "failed", info.remedy or "")
        for role in ("transport", "queue"):
            spec = loaded.one(role)
            checks.add(role, "ok", spec.name)
        kinds = sorted(loaded.runners_by_kind())
        checks.add("runners", "ok" if kinds else "fail", ", ".join(kinds) or "no runner: this node cannot run tasks",
                   "" if kinds else "pip install gaia-runner-wasm")
        checks.add("prover", "ok", loaded.prover(config.prover.scheme).scheme)
        transport = loaded.one("transport").factory(state.context(identity_required=True))
    except GaiaError as exc:
        checks.add("plugins", "fail", exc.message, exc.hint or "")
    over = Limits().exceeds(config.offer)
    checks.add("limits", "warn" if over else "ok",
               "tasks with default limits would be refused: " + "; ".join(over) if over
               else "offer covers default task limits",
               "raise the [offer] limits in config.toml" if over else "")
    status: dict[str, Any] | None = None
    peers: list[dict[str, Any]] = []
    try:
        with ControlClient(state.home, timeout=5.0) as client:
            status = client.call("status")
            peers = client.call("peers")
        checks.add("node", "ok", f"running {status['uptime_s']:.0f}s at {status['address']}")
    except NodeError as exc:
        checks.add("node", "fail", exc.message, exc.hint or "")
        taken = port_taken(config.node.listen)
        if taken:
            checks.add("port", "fail", taken, "stop that program, or set [node] listen to a free port")
        elif config.node.listen:
            checks.add("port", "ok", f"{config.node.listen} is free")
    if transport is not None:
        _peer_checks(checks, transport, list(config.network.bootstrap), status, peers)
    if status is not None:
        _clock_checks(checks, status, peers)
        up = status["peers"]["up"]
        if status["queue"]["admitted"] == 0 and status["uptime_s"] > 60 and up:
            checks.add("work", "warn", "no task admitted yet",
                       "submitters pick nodes by benchmark and load; check `gaia status`")
    return checks


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def doctor(state: State, as_json: bool) -> None:
    """Explain why this node gets no work or cannot reach peers, and what to do."""
    checks = diagnose(state)
    if as_json:
        print_json(checks)
    else:
        marks = {"ok": "[ok]  ", "warn": "[warn]", "fail": "[FAIL]"}
        for c in checks:
            click.echo(f"{marks[c['outcome']]} {c['check']}: {c['detail']}")
            if c["fix"]:
                click.echo(f"        → {c['fix']}")
    if any(c["outcome"] == "fail" for c in checks):
        raise SystemExit(1)
