"""``gaia bench``: progress while it measures, the real time of a cached report, config changes re-measure."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gaia_core.config import Home
from tests.nodes import gaia

pytest.importorskip("gaia_bench_psutil")


def bench(home: Home, *args: str) -> dict:
    return json.loads(gaia(home, "--plugins", "gaia-bench-psutil", "bench", "--quick", "--json", *args).stdout)


def test_cached_report_keeps_its_time_and_a_config_change_measures_again(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    gaia(home, "init")
    first = bench(home)
    assert first["cached"] is False
    again = bench(home)
    assert again["cached"] is True and again["measured_at"] == first["measured_at"]
    table = gaia(home, "--plugins", "gaia-bench-psutil", "bench", "--quick").stdout
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(first["measured_at"]))
    assert table.splitlines()[0].startswith(f"Benchmark measured {when} (cached")
    gaia(home, "config", "set", "node.cores", "1" if os.cpu_count() != 1 else "2")
    changed = bench(home)
    assert changed["cached"] is False and changed["measured_at"] > first["measured_at"]
    gaia(home, "config", "set", "bench-psutil.cpu_tdp_w", "50")  # an energy setting: measured again too
    assert bench(home)["cached"] is False


def test_progress_shows_on_a_terminal(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    gaia(home, "init")
    master, replica = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gaia_core", "--home", str(home.root), "--plugins",
                             "gaia-bench-psutil", "bench", "--quick"], stdin=subprocess.DEVNULL, stdout=replica,
                            stderr=replica)
    os.close(replica)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and b"measuring with gaia_bench_psutil" not in seen:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # the process closed the terminal
                    break
                seen += chunk
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: no need to wait for the figures
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            os.close(master)
    assert b"measuring with gaia_bench_psutil" in seen, seen[-2000:]
    assert proc.returncode in (0, 130) and b"Traceback" not in seen  # 0: it had finished already
