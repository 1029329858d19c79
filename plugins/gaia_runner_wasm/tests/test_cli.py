"""``gaia task run`` through this plugin (click's CliRunner, isolated home)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from gaia_core.cli import cli

MODULES = resources.files("gaia_runner_wasm").joinpath("modules")


def module(name: str) -> str:
    return str(MODULES.joinpath(f"{name}.wasm"))


def test_run_wasi_command_from_stdin(cli_runner) -> None:
    result = cli_runner.invoke(cli, ["task", "run", module("upper"), "--input", "-", "--entry", "_start"],
                               input=b"shout")
    assert result.exit_code == 0, result.output
    assert "status:  ok" in result.output and "output:  SHOUT" in result.output
    assert "fuel:" in result.output and "ms wall" in result.output


def test_run_json_and_output_file(cli_runner, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"\x00\x01binary")
    out = tmp_path / "out.bin"
    result = cli_runner.invoke(cli, ["task", "run", module("echo"), "--input", str(source), "--entry", "echo",
                                     "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "ok" and data["output_file"] == str(out) and data["fuel_used"] > 0
    assert out.read_bytes() == b"\x00\x01binary"


def test_failed_task_exits_7_with_its_reason(cli_runner) -> None:
    result = cli_runner.invoke(cli, ["task", "run", module("echo"), "--entry", "missing", "--json"])
    assert result.exit_code == 7
    data = json.loads(result.output)
    assert data["status"] == "invalid" and "missing" in data["message"]


def test_budgets_from_the_command_line(cli_runner, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.write_bytes(b"x" * 10_000)
    result = cli_runner.invoke(cli, ["task", "run", module("upper"), "--input", str(source), "--entry", "_start",
                                     "--fuel", "1000", "--json"])
    assert result.exit_code == 7
    assert json.loads(result.output)["status"] == "out_of_fuel"


def test_missing_input_file_is_a_usage_error(cli_runner) -> None:
    result = cli_runner.invoke(cli, ["task", "run", module("echo"), "--entry", "echo", "--input", "nope.bin"])
    assert result.exit_code != 0
    assert "does not exist" in str(result.exception)
