"""`gaia bench` and `gaia monitor` with the real plugin installed."""

from __future__ import annotations

import json

from click.testing import CliRunner

from gaia_core.cli import cli
from gaia_core.config import Home


def test_bench_quick_json_says_where_each_figure_came_from(cli_runner: CliRunner, gaia_home: Home) -> None:
    result = cli_runner.invoke(cli, ["--plugins", "gaia-bench-psutil", "bench", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    entries = {e["name"]: e for e in data["entries"]}
    assert entries["cpu.gflops_all"]["source"] == "measured" and entries["cpu.gflops_all"]["value"] > 0
    assert entries["energy.cpu_power_w"]["source"] in {"measured", "estimated"}
    assert all(e["source"] in {"measured", "estimated", "reported", "unknown"} for e in entries.values())
    assert (gaia_home.cache_dir / "bench-psutil.json").exists()


def test_bench_table_and_refresh(cli_runner: CliRunner, gaia_home: Home) -> None:
    first = cli_runner.invoke(cli, ["--plugins", "gaia-bench-psutil", "bench", "--quick"])
    assert first.exit_code == 0, first.output
    assert "cpu.gflops_1core" in first.output and "estimated" in first.output
    cached = json.loads((gaia_home.cache_dir / "bench-psutil.json").read_text())["report"]["measured_at"]
    again = cli_runner.invoke(cli, ["--plugins", "gaia-bench-psutil", "bench", "--quick", "--refresh"])
    assert again.exit_code == 0, again.output
    assert json.loads((gaia_home.cache_dir / "bench-psutil.json").read_text())["report"]["measured_at"] > cached


def test_monitor_json_streams_count_lines(cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(cli, ["--plugins", "gaia-bench-psutil", "monitor", "--json", "--count", "3",
                                     "--interval", "0.05"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 3
    assert all(line["sample"]["ram_total_bytes"] > 0 and line["sample"]["power_source"] in {"measured", "estimated"}
               and line["queue"] is None for line in lines)  # the node's snapshot shape (docs/cli.md)


def test_monitor_live_view(cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(cli, ["--plugins", "gaia-bench-psutil", "monitor", "--count", "2",
                                     "--interval", "0.05"])
    assert result.exit_code == 0, result.output
    assert "RAM used / total" in result.output and "power" in result.output
    # not a terminal (a pipe, a file): every sample is printed as it comes, not only the last one at the end
    assert "sample 1" in result.output and "sample 2" in result.output, result.output


def test_no_benchmark_plugin_says_what_to_install(cli_runner: CliRunner) -> None:
    for args in (["bench"], ["monitor", "--count", "1"]):
        result = cli_runner.invoke(cli, ["--plugins", "", *args])
        assert result.exit_code != 0
        assert "no benchmark plugin is active" in str(result.exception)
        assert "gaia-bench-psutil" in str(result.exception)


def test_monitor_rejects_a_bad_interval(cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(cli, ["--plugins", "gaia-bench-psutil", "monitor", "--interval", "0"])
    assert result.exit_code == 2 and "interval" in result.output
