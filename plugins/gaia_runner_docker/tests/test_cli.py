"""``gaia task run --image`` through this plugin (click's CliRunner, isolated home)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gaia_core.cli import cli
from gaia_core.config import Home
from gaia_core.errors import RejectedError, UsageError


def _allow(home: Home, image: str) -> None:
    home.root.mkdir(parents=True, exist_ok=True)
    home.config_file.write_text(f'[runner_docker]\nallow = ["{image}"]\n', encoding="utf-8")


def test_run_an_allowed_image(cli_runner: CliRunner, gaia_home: Home, busybox: str, tmp_path: Path) -> None:
    _allow(gaia_home, busybox)
    source = tmp_path / "in.txt"
    source.write_bytes(b"from the cli")
    result = cli_runner.invoke(cli, ["task", "run", "--image", busybox, "--entry", "cat /gaia/input",
                                     "--input", str(source), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["output"] == "from the cli"


def test_an_image_not_allowed_is_refused_in_one_line(cli_runner: CliRunner, busybox: str) -> None:
    result = cli_runner.invoke(cli, ["task", "run", "--image", busybox, "--entry", "true"])
    assert isinstance(result.exception, RejectedError) and result.exception.exit_code == 6
    assert "not allowed on this node (default deny)" in str(result.exception)


@pytest.mark.parametrize("args, words", [
    (["--image", "sha256:abc", "--entry", "true"], "not an image digest"),
    (["--image", "sha256:" + "ab" * 32], "--entry is required"),
    ([], "give either MODULE or --image"),
])
def test_bad_command_lines_are_usage_errors(cli_runner: CliRunner, args: list[str], words: str) -> None:
    result = cli_runner.invoke(cli, ["task", "run", *args])
    assert isinstance(result.exception, UsageError) and result.exception.exit_code == 2
    assert words in str(result.exception)
