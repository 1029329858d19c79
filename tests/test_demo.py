"""The main job: ``gaia demo`` trains the digits classifier on a real devnet and cleans up after itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from nodes import node_processes

from gaia_core import demo, plugins
from gaia_core.cli import main
from gaia_core.config import Home
from gaia_core.errors import PluginError

pytest.importorskip("gaia_runner_wasm.workloads")


def test_demo_reaches_90_percent_writes_its_report_and_stops_every_node(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    lines: list[str] = []
    workload = demo.find_workload(plugins.load().hook)

    summary = demo.run(directory, workload, rounds=3, echo=lines.append)

    assert summary["final_accuracy"] >= 0.90
    assert [r["number"] for r in summary["rounds"]] == [1, 2, 3]
    assert sum(node["verified"] for node in summary["per_node"].values()) > 0
    report = Path(summary["report"])
    assert report == directory / "report.md"
    assert f"{summary['final_accuracy']:.1%}" in report.read_text()
    assert (directory / "report.svg").read_text().lstrip().startswith(("<svg", "<?xml"))
    assert any(line.startswith("round 3:") for line in lines)
    assert node_processes(directory) == []


def test_the_workload_comes_through_the_gaia_workloads_hook() -> None:
    workload = demo.find_workload(plugins.load(["gaia-runner-wasm"]).hook)
    assert workload.name == demo.WORKLOAD
    train, held_out = workload.partition(4, demo.SCORE_TASKS, seed=0)
    assert (len(train), len(held_out)) == (4, demo.SCORE_TASKS)
    assert sum(map(len, train)) + sum(map(len, held_out)) == 1797


def test_without_a_plugin_offering_it_the_demo_says_what_to_install() -> None:
    with pytest.raises(PluginError, match="no active plugin offers the workload 'digits-mlp'") as caught:
        demo.find_workload(plugins.load([]).hook)
    assert "pip install gaia-runner-wasm" in str(caught.value)


def test_gaia_demo_without_the_runner_plugin_is_one_line_and_starts_nothing(gaia_home: Home, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--plugins", "gaia-queue-memory", "demo", "--dir", str(tmp_path / "demo")])
    assert exited.value.code == PluginError.exit_code
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("Error:") == 1 and "pip install gaia-runner-wasm" in err
    assert not (tmp_path / "demo").exists()
