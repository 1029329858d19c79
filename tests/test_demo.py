"""The main job: ``gaia demo`` trains the digits classifier on a real devnet and cleans up after itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from gaia_core import demo

from nodes import node_processes

pytest.importorskip("gaia_runner_wasm.workloads")


def test_demo_reaches_90_percent_writes_its_report_and_stops_every_node(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    lines: list[str] = []

    summary = demo.run(directory, rounds=3, echo=lines.append, progress=False)

    assert summary["final_accuracy"] >= 0.90
    assert [r["number"] for r in summary["rounds"]] == [1, 2, 3]
    assert sum(node["verified"] for node in summary["per_node"].values()) > 0
    report = Path(summary["report"])
    assert report == directory / "report.md"
    assert f"{summary['final_accuracy']:.1%}" in report.read_text()
    assert (directory / "report.svg").read_text().lstrip().startswith(("<svg", "<?xml"))
    assert any(line.startswith("round 3:") for line in lines)
    assert node_processes(directory) == []
