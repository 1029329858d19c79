"""``gaia doctor``: explain why this node gets no work or cannot reach peers."""

from __future__ import annotations

from typing import Any

import click

from gaia_core.console import print_json
from gaia_core.control import ControlClient
from gaia_core.envelope import DEFAULT_WINDOW_S
from gaia_core.errors import GaiaError, NodeError
from gaia_core.identity import Identity
from gaia_core.model import Limits
from gaia_core.state import State


def diagnose(state: State) -> list[dict[str, Any]]:
    """Every check with its outcome (ok, warn, fail) and what to do about it."""
    checks: list[dict[str, Any]] = []

    def add(name: str, outcome: str, detail: str, fix: str = "") -> None:
        checks.append({"check": name, "outcome": outcome, "detail": detail, "fix": fix})

    try:
        identity = Identity.load(state.home.identity_dir)
        add("keys", "ok", f"node id {identity.node_id[:16]}…")
    except GaiaError as exc:
        add("keys", "fail", exc.message, exc.hint or "run `gaia init`")
    try:
        config = state.config()
        config_file = state.home.config_file
        add("config", "ok", str(config_file) if config_file.exists() else "defaults (no config.toml)")
    except GaiaError as exc:
        add("config", "fail", exc.message, exc.hint or "")
        return checks
    try:
        loaded = state.plugins()
        for info in loaded.infos.values():
            if info.status == "failed":
                add(f"plugin {info.name}", "fail", info.error or "failed", info.remedy or "")
        for role in ("transport", "queue"):
            spec = loaded.one(role)
            add(role, "ok", spec.name)
        kinds = sorted(loaded.runners_by_kind())
        add("runners", "ok" if kinds else "fail", ", ".join(kinds) or "no runner: this node cannot run tasks",
            "" if kinds else "pip install gaia-runner-wasm")
        add("prover", "ok", loaded.prover(config.prover.scheme).scheme)
    except GaiaError as exc:
        add("plugins", "fail", exc.message, exc.hint or "")
    over = Limits().exceeds(config.offer)
    add("limits", "warn" if over else "ok",
        "tasks with default limits would be refused: " + "; ".join(over) if over
        else "offer covers default task limits",
        "raise the [offer] limits in config.toml" if over else "")
    try:
        with ControlClient(state.home, timeout=5.0) as client:
            status = client.call("status")
            peers = client.call("peers")
    except NodeError as exc:
        add("node", "fail", exc.message, exc.hint or "")
        return checks
    add("node", "ok", f"running {status['uptime_s']:.0f}s at {status['address']}")
    up = [p for p in peers if p["state"] == "up"]
    if up:
        add("peers", "ok", f"{len(up)} up of {len(peers)}")
    else:
        add("peers", "fail", f"no peer is up ({len(peers)} known)",
            "set [network] bootstrap to a peer's address (tcp://HOST:PORT#KEY) and check firewalls")
    skews = [p["last_seen"] - p["record_at"] for p in up if p.get("record_at")]
    worst = max(skews, key=abs, default=0.0)
    add("clock", "warn" if abs(worst) > DEFAULT_WINDOW_S / 2 else "ok",
        f"largest clock difference with a peer ≈ {worst:+.1f}s"
        f" (messages older than ±{DEFAULT_WINDOW_S:.0f}s are refused)",
        "sync this machine's clock (NTP)" if abs(worst) > DEFAULT_WINDOW_S / 2 else "")
    if status["queue"]["admitted"] == 0 and status["uptime_s"] > 60 and up:
        add("work", "warn", "no task admitted yet", "submitters pick nodes by benchmark and load; check `gaia status`")
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
