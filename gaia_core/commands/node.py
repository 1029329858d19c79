"""``gaia node``, ``stop``, ``status``, ``peers``, ``rewards``, ``register``: run and inspect a node."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from gaia_core import daemon, logs
from gaia_core.commands.params import DAY_S, Address, Integer, Seconds
from gaia_core.console import (
    console,
    human_number,
    make_table,
    print_json,
    short_id,
    stream_json,
    watch as console_watch,
)
from gaia_core.control import ControlClient
from gaia_core.errors import NodeError
from gaia_core.model import MAX_CORES, SCORE
from gaia_core.rewards import SUMMARY_SQL
from gaia_core.state import State


def pid_file(state: State) -> Path:
    return state.home.root / "node.pid"


@click.command()
@click.option("--listen", metavar="ADDR", type=Address(),
              help="Address to bind, e.g. tcp://0.0.0.0:7700 (config: [node] listen).")
@click.option("--advertise", metavar="ADDR", help="Address peers should dial, when it differs from --listen.")
@click.option("--bootstrap", metavar="ADDR", multiple=True,
              help="A peer to join (repeatable; config: [network] bootstrap).")
@click.option("--cores", type=Integer(1, MAX_CORES),
              help=f"Cores to offer, 1 to {MAX_CORES} (config: [node] cores; default all).")
@click.option("--insecure", is_flag=True, help="Plaintext ZeroMQ, for debugging only (CurveZMQ is the default).")
@click.option("--detach", is_flag=True,
              help="Run in the background; logs go to <home>/node.log, stop with `gaia stop`.")
@click.option("--dashboard", "with_dashboard", is_flag=True,
              help="Also serve the live web dashboard on 127.0.0.1 (read-only; its URL is printed).")
@click.option("--dashboard-port", type=Integer(0, 65535), default=0, help="The dashboard's port (0: any free port).")
@click.pass_obj
def node(state: State, listen: str | None, advertise: str | None, bootstrap: tuple[str, ...], cores: int | None,
         insecure: bool, detach: bool, with_dashboard: bool, dashboard_port: int) -> None:
    """Run this node: benchmark, join peers, take tasks, run them sandboxed, prove and return them.

    Stops cleanly on Ctrl-C or SIGTERM, finishing in-flight tasks first; a second signal stops at once.
    """
    if detach:
        _detach(state)
        return
    from gaia_core.node import Node

    config = state.config()
    config = attrs.evolve(
        config,
        node=attrs.evolve(config.node, listen=listen or config.node.listen,
                          advertise=advertise or config.node.advertise, cores=cores or config.node.cores),
        network=attrs.evolve(config.network, bootstrap=list(bootstrap) or config.network.bootstrap,
                             security="insecure" if insecure else config.network.security),
    )
    logs.configure(config.node.log_level)
    # A task passes through several threads (transport, queue, worker, delivery); handing the GIL
    # over every 0.5 ms instead of 5 ms measured ~15 % more tasks/s on one node (docs/performance.md).
    sys.setswitchinterval(0.0005)
    context = attrs.evolve(state.context(identity_required=True), config=config)
    running = Node(context, state.plugins())
    signals = {"count": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            os._exit(128 + signum)
        running.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    board = _Board(state, dashboard_port) if with_dashboard else None  # bound first: a busy port stops nothing
    try:
        running.start()
        pid_file(state).write_text(str(os.getpid()))
        while not running.wait(0.5):
            pass
    finally:
        if board is not None:
            board.stop()
        pid_file(state).unlink(missing_ok=True)


class _Board:
    """``gaia node --dashboard``: the dashboard served from the node's process, its log tail kept in memory."""

    def __init__(self, state: State, port: int) -> None:
        from gaia_core.commands import dashboard
        from gaia_core.dashboard.logtail import RingHandler

        self.logs = RingHandler().attach()  # from the start, so the tail shows the node starting
        try:
            self.served = dashboard.start(state, host="127.0.0.1", port=port, interval=1.0, actions=False,
                                          logs=self.logs)
        except BaseException:
            self.logs.detach()
            raise

    def stop(self) -> None:
        self.served.stop()
        self.logs.detach()


def _detach(state: State) -> None:
    if _alive(state):
        raise NodeError(f"a node is already running for {state.home.root}", hint="stop it with `gaia stop`")
    args = [a for a in sys.argv[1:] if a != "--detach"]
    proc = daemon.spawn(state.home, args)
    node_id = daemon.wait_ready(state.home, proc)["node_id"]
    click.echo(f"node {node_id[:16]} running in the background (pid {proc.pid}); logs: {daemon.log_file(state.home)}")


def _alive(state: State) -> bool:
    try:
        with ControlClient(state.home, timeout=2.0) as client:
            client.call("status")
        return True
    except NodeError:
        return False


@click.command()
@click.option("--timeout", type=Seconds(1, DAY_S), default=30.0, show_default=True,
              help="Seconds to wait for the node to drain and exit (1 s to 1 day).")
@click.pass_obj
def stop(state: State, timeout: float) -> None:
    """Stop the running node (it drains in-flight tasks first)."""
    with ControlClient(state.home) as client:
        client.call("stop")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(state) and not pid_file(state).exists():
            click.echo("node stopped")
            return
        time.sleep(0.2)
    pid = pid_file(state).read_text().strip() if pid_file(state).exists() else "?"
    raise NodeError(f"the node did not stop within {timeout:.0f}s", hint=f"kill it with `kill {pid}`")


def call(state: State, method: str, **params: Any) -> Any:
    """Call the running node's control socket."""
    with ControlClient(state.home) as client:
        return client.call(method, **params)


_watch_options = [
    click.option("--watch", is_flag=True, help="Redraw every --interval seconds until Ctrl-C (--json: a line each)."),
    click.option("--interval", type=Seconds(0.1, DAY_S), default=2.0, show_default=True,
                 help="Seconds between redraws with --watch."),
    click.option("--count", type=Integer(0, 1_000_000), default=0, help="With --watch: stop after N redraws."),
]


def _watchable(command: Any) -> Any:
    for option in reversed(_watch_options):
        command = option(command)
    return command


def _show(state: State, method: str, view: Any, as_json: bool, watch: bool, interval: float, count: int) -> None:
    """Print the node's answer to ``method`` (through ``view``, or as JSON) once, or redrawn with ``--watch``."""
    if not watch:
        info = call(state, method)
        if as_json:
            print_json(info)
        else:
            console.print(view(info), crop=False)
    elif as_json:
        stream_json(lambda: call(state, method), interval=interval, count=count)
    else:
        console_watch(lambda: view(call(state, method)), interval=interval, count=count)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_watchable
@click.pass_obj
def status(state: State, as_json: bool, watch: bool, interval: float, count: int) -> None:
    """Show the running node: uptime, peers, queue, refusals, outbox, tasks, benchmark and rewards."""
    _show(state, "status", _status_view, as_json, watch, interval, count)


def _status_view(info: dict[str, Any]) -> Group:
    queue = info["queue"]
    refused = {**info["refused"], "admission": info["admission"]}
    outbox = info["outbox"]
    dropped = {k.removeprefix("dropped_"): v for k, v in outbox.items() if k.startswith("dropped_")}
    bench = info["benchmark"]
    lines = [
        f"node     {info['node_id']}  {info['name']}" + ("  PAUSED (`gaia resume`)" if info.get("paused") else ""),
        f"address  {info['address']}   uptime {info['uptime_s']:.0f}s   cores {info['cores']}",
        f"peers    {info['peers']['up']} up of {info['peers']['total']}",
        f"queue    {queue['depth']} queued / {queue['capacity']}, {info['running']} running, "
        f"{queue['admitted']} admitted, rejected: {counts_text(queue['rejected'])}",
        "refused  " + ("; ".join(f"{who}: {counts_text(by)}" for who, by in refused.items() if by) or "none"),
        f"outbox   {outbox['results']} results ({outbox['bytes']} bytes) for {outbox['submitters']} "
        f"submitter(s), dropped: {counts_text(dropped)}",
        "tasks    " + (", ".join(f"{k} {v:.0f}" for k, v in info["tasks"].items()) or "none yet"),
        "jobs     " + (", ".join(f"{k} {v}" for k, v in info["jobs"].items()) or "none"),
        "bench    " + (", ".join(f"{k}={v:.3g}" for k, v in list(bench.items())[:6]) or "no benchmark plugin"),
    ]
    return Group(*(Text(line, no_wrap=True, overflow="ignore") for line in lines), _rewards_view(info["rewards"]))


def counts_text(counts: dict[str, int]) -> str:
    """``{"stale": 2, "replayed": 5}`` as ``replayed 5, stale 2`` (most first), or ``none``."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{reason} {count}" for reason, count in ordered if count) or "none"


def _rewards_view(rows: list[dict[str, Any]]) -> Group:
    """The ledger summary: what this node earned and granted in all, then the table by node and role."""
    if not rows:
        return Group(Text("rewards  none yet"))
    totals = [_total(rows, "earned", "from", "submitter"), _total(rows, "granted", "to", "worker")]
    table = make_table("rewards", ["node", "role", "tasks", "verified", "credit", "fuel", "cpu s", "energy J"],
                       [(short_id(r["node_id"]), r["role"], r["tasks"], r["verified"], human_number(r["credit"]),
                         human_number(r["fuel"]), human_number(r["cpu_s"]), human_number(r["energy_j"]))
                        for r in rows])
    return Group(*(Text(line) for line in totals if line), table)


def _total(rows: list[dict[str, Any]], role: str, preposition: str, counterpart: str) -> str:
    """One line of the earnings summary, e.g. ``earned   1.23k credit for 120 tasks (118 verified) from 3 ...``."""
    mine = [r for r in rows if r["role"] == role]
    if not mine:
        return ""
    credit = sum(r["credit"] or 0 for r in mine)
    tasks, verified = sum(r["tasks"] for r in mine), sum(r["verified"] or 0 for r in mine)
    return (f"{role:<8} {human_number(credit)} credit for {tasks} tasks ({verified} verified) {preposition} "
            f"{len(mine)} {counterpart}{'s' if len(mine) != 1 else ''}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_watchable
@click.pass_obj
def peers(state: State, as_json: bool, watch: bool, interval: float, count: int) -> None:
    """List the peers the running node knows: state, last seen, RTT, load, score, refusals by reason."""
    _show(state, "peers", _peers_view, as_json, watch, interval, count)


def _peers_view(rows: list[dict[str, Any]]) -> Text | Table:
    if not rows:
        return Text("no peers yet (set [network] bootstrap or pass --bootstrap to `gaia node`)")
    now = time.time()
    return make_table(None, ["node", "name", "address", "state", "seen", "rtt ms", "load", "score", "trust",
                             "refused"],
                [(short_id(r["node_id"]), r["name"], r["address"].partition("#")[0].removeprefix("tcp://"), r["state"],
                  f"{now - r['last_seen']:.0f}s", None if r["rtt_ms"] is None else f"{r['rtt_ms']:.1f}",
                  None if r["load"] is None else f"{r['load']:.2f}",
                  human_number(r["benchmark"].get(SCORE)), _trust_text(r.get("trust")),
                  counts_text(r["refused"])) for r in rows], flex=("name", "address", "refused"))


def _trust_text(trust: dict[str, Any] | None) -> str | None:
    """``yes`` for a peer the spot-check policy trusts, ``no`` for one it still checks (details in ``--json``)."""
    return None if trust is None else ("yes" if trust.get("trusted") else "no")


#: Printed on stderr by a reading command that found no node and read state.db instead.
OFFLINE_NOTE = "(node not running: read from state.db)"


def running_node(state: State) -> ControlClient | None:
    """A client of the node serving the home, or None when none answers there (no control socket, or a stale one)."""
    try:
        return ControlClient(state.home)
    except NodeError:
        return None


def read_state(state: State, sql: str, params: tuple[Any, ...] = (), *, note: bool = True) -> list[dict[str, Any]]:
    """Rows of ``sql`` on the home's state.db opened read-only (sqlite URI ``mode=ro``), for when no node runs.

    Says on stderr (unless ``note`` is false) that the rows come from state.db; none when there is no
    state.db yet. StateError (one line, exit 8) when the file is not a database GAIA can read.
    """
    import sqlite3

    from gaia_core.store import SCHEMA_VERSION, StateError

    path = state.home.state_db
    if not path.exists():
        if note:
            click.echo(f"(node not running, and nothing recorded yet: no {path})", err=True)
        return []
    if note:
        click.echo(OFFLINE_NOTE, err=True)
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise StateError(f"{path} has schema version {version}, newer than this GAIA knows "
                                 f"({SCHEMA_VERSION})", hint="upgrade gaia-core to the version that wrote it")
            if version == 0:
                return []  # never migrated: no tables yet
            cursor = db.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StateError(f"cannot read {path}: {exc}",
                         hint="check its permissions, or start the node (`gaia node`) to check and repair it") from None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def rewards(state: State, as_json: bool) -> None:
    """Show the reward ledger: credit granted to workers and earned from submitters (docs/rewards.md).

    Without a running node, reads the ledger from state.db (read-only).
    """
    client = running_node(state)
    if client is None:
        rows = read_state(state, SUMMARY_SQL)
    else:
        with client:
            rows = client.call("rewards")
    if as_json:
        print_json(rows)
    else:
        console.print(_rewards_view(rows))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def register(state: State, as_json: bool) -> None:
    """Announce this node's signed NodeRecord to its peers and show what the network knows of it."""
    record = call(state, "announce")
    known = [p for p in call(state, "peers") if p["state"] == "up"]
    if as_json:
        print_json({"record": record, "known_by": known})
        return
    click.echo(f"announced node {record['node_id']} at {', '.join(record['addresses'])}")
    click.echo(f"offer: {record['cores']} cores, kinds {', '.join(record['task_kinds']) or 'none'}")
    click.echo(f"{len(known)} peer(s) up know this record" + ("" if known else
               " (none yet: set [network] bootstrap, or check `gaia doctor`)"))
