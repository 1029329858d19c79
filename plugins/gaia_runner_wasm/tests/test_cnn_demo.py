"""``gaia demo --model cnn``: the CNN trained across a real devnet, its tasks spot-checked by re-execution."""

from __future__ import annotations

import json
from pathlib import Path

from gaia_core import devnet
from gaia_core.cli import cli


def test_gaia_demo_model_cnn_learns_across_nodes_and_stops_them(cli_runner, tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    result = cli_runner.invoke(cli, ["demo", "--model", "cnn", "--nodes", "2", "--rounds", "2", "--shards", "4",
                                     "--dir", str(directory), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [r["number"] for r in summary["rounds"]] == [1, 2]
    assert summary["final_accuracy"] >= 0.93
    verification = summary["verification"]
    assert verification.get("verdicts.valid", 0) > 0
    assert set(verification) <= {"verdicts.valid", "spot_checks"}, verification  # no mismatch between nodes
    assert len(summary["per_node"]) == 2
    assert all(devnet.status(home)["state"] == "down" for home in devnet.homes(directory))


def test_an_unknown_model_is_one_line_and_exit_2(cli_runner) -> None:
    result = cli_runner.invoke(cli, ["demo", "--model", "resnet"])
    assert result.exit_code == 2
    assert "'resnet' is not one of 'mlp', 'cnn'" in result.output
