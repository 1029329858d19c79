"""What the dashboard costs the node, and how soon its page paints.

Prints ``measure: gaia=X baseline=Y ratio=Z`` lines:

* node_cpu_pct_of_core: CPU time of a ``gaia node --dashboard`` process per second of wall time (% of one
  core) while a page's event stream is open at one update per second, against the same process with no
  page open (baseline), in alternating windows of the same run.
* page_cost_pct_of_core: the difference of the two; the baseline is the 1 % target, not a measurement.
* first_paint_ms: first contentful paint of the dashboard in headless Chromium, from the printed URL (its
  redirect included), median of several loads; baseline: the same page files served statically by
  Python's ``http.server`` on loopback in the same run (its event stream is missing there).
  Target: <= 1000 ms. Skipped without a browser.

Run: .venv/bin/python benchmarks/bench_dashboard.py  (about 90 s on 2 cores).
"""

from __future__ import annotations

import functools
import http.client
import http.server
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from gaia_core import config as config_mod, devnet
from gaia_core.config import Home
from gaia_core.control import ControlClient
from gaia_core.errors import NodeError
from gaia_core.identity import Identity

WINDOW_S = 15.0
WINDOWS = 2
LOADS = 5


def line(measure: str, gaia: float, baseline: float) -> None:
    ratio = gaia / baseline if baseline else float("inf")
    print(f"{measure}: gaia={gaia:.4g} baseline={baseline:.4g} ratio={ratio:.3g}", flush=True)


def start_node(root: Path) -> tuple[subprocess.Popen[str], str]:
    """A ``gaia node --dashboard`` process in a fresh home under ``root``, and its dashboard URL once it serves."""
    home = Home(root / "node")
    home.root.mkdir(parents=True)
    Identity.generate().save(home.identity_dir)
    tables = {"node": {"name": "bench", "listen": f"tcp://127.0.0.1:{devnet.free_port()}", "cores": 1},
              "zk_mock": {"simulate_time": False}}
    home.config_file.write_text(config_mod.to_toml(tables), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "gaia_core", "--home", str(home.root), "node", "--dashboard"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with ControlClient(home, timeout=2.0) as client:
                client.call("status")
            return proc, url
        except NodeError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the node did not start within 60 s")


def cpu_pct(process: psutil.Process, seconds: float) -> float:
    """The process's CPU use over the next ``seconds``, in % of one core."""
    before, start = process.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after, elapsed = process.cpu_times(), time.monotonic() - start
    return ((after.user + after.system) - (before.user + before.system)) / elapsed * 100


def open_stream(url: str, stop: threading.Event) -> threading.Thread:
    """Read the page's event stream (as an open page does) until ``stop``."""
    origin, token = url.split("/?token=")
    host, port = origin.removeprefix("http://").split(":")

    def read() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/api/events", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        while not stop.is_set():
            response.fp.readline()
        connection.close()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def node_cost(proc: subprocess.Popen[str], url: str) -> None:
    process = psutil.Process(proc.pid)
    time.sleep(3.0)  # past the start-up work
    idle, open_ = [], []
    for _ in range(WINDOWS):
        idle.append(cpu_pct(process, WINDOW_S))
        stop = threading.Event()
        reader = open_stream(url, stop)
        time.sleep(1.0)
        open_.append(cpu_pct(process, WINDOW_S))
        stop.set()
        reader.join(5.0)
    gaia, baseline = statistics.mean(open_), statistics.mean(idle)
    line("node_cpu_pct_of_core", gaia, baseline)
    line("page_cost_pct_of_core", max(0.0, gaia - baseline), 1.0)


def _paint_ms(driver: Any, url: str) -> float:
    driver.get(url)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        paints = driver.execute_script(
            "return performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)")
        if paints:
            return float(paints[0])
        time.sleep(0.05)
    raise SystemExit(f"no first contentful paint of {url} within 10 s")


class Quiet(http.server.SimpleHTTPRequestHandler):
    """The baseline's static file server, without a line per request."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Log nothing."""


def first_paint(url: str, root: Path) -> None:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        print("first_paint_ms: skipped: no chromium and chromedriver (run .ci/ensure-browser)", flush=True)
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    site = root / "site"
    shutil.copytree(Path(__file__).resolve().parents[1] / "gaia_core" / "dashboard" / "static", site / "static")
    shutil.copyfile(site / "static" / "index.html", site / "index.html")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        gaia, baseline = [], []
        for _ in range(LOADS):
            driver.delete_all_cookies()
            gaia.append(_paint_ms(driver, url))
            baseline.append(_paint_ms(driver, base))
        line("first_paint_ms", statistics.median(gaia), statistics.median(baseline))
    finally:
        driver.quit()
        server.shutdown()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="gaia-bench-dashboard-") as tmp:
        proc, url = start_node(Path(tmp))
        try:
            node_cost(proc, url)
            first_paint(url, Path(tmp))
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
