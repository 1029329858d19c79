"""``gaia bench`` (what this machine can do) and ``gaia monitor`` (what it is doing now)."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
import click
from rich.console import RenderableType
from rich.live import Live
from rich.table import Table

from gaia_core.codec import structure
from gaia_core.commands.params import DAY_S, Seconds
from gaia_core.console import console, err_console, human_number, print_json, print_table
from gaia_core.control import ControlClient
from gaia_core.errors import NodeError, PluginError
from gaia_core.model import BenchmarkReport, Measurement, ResourceSample
from gaia_core.state import State

_NO_PROVIDER_HINT = "install one (`pip install gaia-bench-psutil`) or check `gaia plugins --all`"


def _providers(state: State) -> list[Any]:
    """Build every active benchmark provider, or say how to get one."""
    specs = state.plugins().specs("benchmark")
    if not specs:
        raise PluginError("no benchmark plugin is active", hint=_NO_PROVIDER_HINT)
    context = state.context()
    return [spec.factory(context) for _plugin, spec in specs]


def _close(providers: list[Any]) -> None:
    for provider in providers:
        close = getattr(provider, "close", None)
        if close is not None:
            close()


def _measure(provider: Any, *, quick: bool, refresh: bool) -> BenchmarkReport:
    """``provider.measure``, passing ``refresh`` to providers that cache (those accepting it)."""
    if refresh and "refresh" in inspect.signature(provider.measure).parameters:
        return provider.measure(quick=quick, refresh=True)
    return provider.measure(quick=quick)


def _human(e: Measurement) -> str:
    if e.value is None:
        return "unknown"
    if e.unit == "B" and isinstance(e.value, (int, float)):
        return f"{e.value / 2**30:.2f} GiB"
    if isinstance(e.value, (int, float)) and not isinstance(e.value, bool):
        return f"{human_number(e.value)} {e.unit}".strip()
    return f"{e.value} {e.unit}".strip()


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--quick", is_flag=True, help="A run of a few seconds, less precise.")
@click.option("--refresh", is_flag=True, help="Re-measure instead of using a cached report.")
@click.pass_obj
def bench(state: State, as_json: bool, quick: bool, refresh: bool) -> None:
    """Measure what this machine can do: CPU, RAM, GPU, disk and energy.

    Merges the reports of every active benchmark plugin. Each figure says
    whether it was measured here, estimated by a model, reported by the OS
    or driver, or is unknown (with the reason). Reports are cached; use
    --refresh to measure again.
    """
    providers = _providers(state)
    started = time.time()
    reports = []
    try:
        for provider in providers:
            name = type(provider).__module__.partition(".")[0]
            with err_console.status(f"measuring with {name}… (a full run takes about 10 s, --quick a few)"):
                reports.append(_measure(provider, quick=quick, refresh=refresh))
    finally:
        _close(providers)
    report = functools.reduce(BenchmarkReport.merge, reports)
    measured_at = min(r.measured_at for r in reports)  # when the oldest figure was measured
    cached = measured_at < started
    if as_json:
        print_json({"measured_at": measured_at, "cached": cached,
                    "entries": [attrs.asdict(e) for e in report.entries]})
        return
    when = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(measured_at))
    print_table(f"Benchmark measured {when}" + (" (cached; --refresh measures again)" if cached else ""),
                ["measure", "value", "source", "provider", "note"],
                [(e.name, _human(e), e.source, e.provider, e.reason) for e in report.entries],
                flex=("value", "provider", "note"))
    click.echo("source: measured = timed on this machine; estimated = energy model; "
               "reported = OS or driver; unknown = see note.")


def _samples(provider: Any, interval: float, count: int) -> Iterator[ResourceSample]:
    """``count`` samples (forever when 0), each after ``interval`` seconds, so CPU % covers the interval."""
    taken = 0
    while count == 0 or taken < count:
        time.sleep(interval)
        yield provider.sample()
        taken += 1


def _gib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 2**30:.2f} GiB"


def _pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f} %"


def _view(sample: ResourceSample, taken: int, node: dict[str, Any] | None = None) -> Table:
    table = Table(title=f"gaia monitor · {time.strftime('%H:%M:%S', time.localtime(sample.at))} "
                        f"· sample {taken} · Ctrl-C to stop", title_justify="left")
    table.add_column("resource")
    table.add_column("now")
    table.add_row("CPU", _pct(sample.cpu_percent))
    table.add_row("RAM used / total", f"{_gib(sample.ram_used_bytes)} / {_gib(sample.ram_total_bytes)}")
    table.add_row("process RSS", _gib(sample.rss_bytes))
    table.add_row("GPU", "no GPU" if sample.vram_total_bytes is None else _pct(sample.gpu_util_percent))
    if sample.vram_total_bytes is not None:
        table.add_row("VRAM used / total", f"{_gib(sample.vram_used_bytes)} / {_gib(sample.vram_total_bytes)}")
    power = "unknown" if sample.power_w is None else f"{sample.power_w:.1f} W ({sample.power_source})"
    table.add_row("power", power)
    if node is not None:
        queue = node["queue"]
        table.add_row("node queue", f"{queue['depth']} queued / {queue['capacity']}, {node['running']} running")
        table.add_row("node tasks", f"{queue['admitted']} admitted, finished {queue['finished'] or 0}")
        table.add_row("node peers", f"{node['peers']} up")
    return table


def _node_snapshots(client: ControlClient, interval: float, count: int) -> Iterator[dict[str, Any]]:
    """``count`` snapshots (forever when 0) of the running node: its latest sample, queue and peers."""
    taken = 0
    while count == 0 or taken < count:
        time.sleep(interval)
        yield client.call("sample")
        taken += 1


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Stream one JSON object per sample (JSON lines).")
@click.option("--interval", type=Seconds(0.05, DAY_S), default=1.0, show_default=True,
              help="Seconds between samples (0.05 s to 1 day).")
@click.option("--count", type=click.IntRange(min=0), default=0, show_default=True,
              help="Stop after N samples (0 = until Ctrl-C).")
@click.pass_obj
def monitor(state: State, as_json: bool, interval: float, count: int) -> None:
    """Show live resource use of this machine: CPU, RAM, process RSS, GPU, power.

    When a node runs for this home, shows the node's own samples plus its queue,
    running tasks and peers.

    Samples come from the first active benchmark plugin; power says whether
    it is measured (RAPL, NVML) or estimated.
    """
    try:
        client = ControlClient(state.home, timeout=5.0)
    except NodeError:
        client = None
    if client is not None:
        with client:
            _watch_node(client, as_json, interval, count)
        return
    providers = _providers(state)
    provider = providers[0]
    try:
        if as_json:
            for sample in _samples(provider, interval, count):  # the node's snapshot shape, its fields null
                print_json({"sample": attrs.asdict(sample), "queue": None, "running": None, "peers": None},
                           compact=True)
            return
        _show_live(_view(sample, taken) for taken, sample in enumerate(_samples(provider, interval, count), 1))
    except KeyboardInterrupt:
        pass
    finally:
        _close(providers)


def _show_live(views: Iterable[RenderableType]) -> None:
    """Each view in place on a terminal (a live table); printed one after another otherwise (a pipe or a
    file gets every sample as it comes, not only the last one when the command ends)."""
    if not console.is_terminal:
        for view in views:
            console.print(view)
        return
    with Live(console=console, auto_refresh=False) as live:
        for view in views:
            live.update(view, refresh=True)


def _watch_node(client: ControlClient, as_json: bool, interval: float, count: int) -> None:
    try:
        if as_json:
            for snapshot in _node_snapshots(client, interval, count):
                print_json(snapshot, compact=True)
            return
        _show_live(_view(structure(snapshot["sample"], ResourceSample) if snapshot["sample"] else ResourceSample(),
                         taken, snapshot)
                   for taken, snapshot in enumerate(_node_snapshots(client, interval, count), 1))
    except KeyboardInterrupt:
        pass
