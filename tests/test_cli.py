"""The ``gaia`` command line, in process (click's CliRunner) and as a real ``python -m gaia_core`` process."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gaia_core import __version__
from gaia_core.cli import cli
from gaia_core.config import Home
from gaia_core.identity import SIGNING_FILE, Identity

BROKEN_PLUGIN = "import package_that_does_not_exist\n"

COMMAND_PLUGIN = """
    import click
    from gaia_core import hookimpl


    @hookimpl
    def gaia_register_commands(cli):
        @cli.command()
        @click.argument("who")
        def hello(who):
            "Say hello."
            click.echo(f"hello {who}")
"""


def gaia(home: Home, *args: str, site: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gaia_core`` in a child process with an isolated home."""
    environ = {k: v for k, v in os.environ.items()
               if k not in {"GAIA_LOAD_PLUGINS", "GAIA_STRICT_PLUGINS", "GAIA_DEBUG", "PYTHONPATH"}}
    environ.update(GAIA_HOME=str(home.root), GAIA_BACKEND="python", COLUMNS="200", **env)
    if site is not None:
        environ["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-m", "gaia_core", *args], capture_output=True, text=True,
                          env=environ, timeout=120, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``Error:`` line of a failed command (and no traceback)."""
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# ---------------------------------------------------------------- help and version


def test_help_reads_as_a_guide(cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for needle in ("Get started:", "gaia init", "Inspect:", "gaia plugins", "--home", "--plugins", "--debug"):
        assert needle in result.output
    for command in ("version", "plugins", "init", "config"):
        assert f"  {command}" in result.output


def test_help_of_the_real_command(gaia_home: Home) -> None:
    proc = gaia(gaia_home, "--help")
    assert proc.returncode == 0 and "Get started:" in proc.stdout


def test_version(cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(cli, ["version"])
    assert result.exit_code == 0
    assert result.output == f"gaia-core: {__version__}\n"
    assert cli_runner.invoke(cli, ["--version"]).output.strip() == f"gaia, version {__version__}"


def test_version_verbose_json(cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(cli, ["--plugins", "", "version", "--verbose", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["gaia-core"] == __version__
    assert info["hashing backend"] in {"native", "python"}
    assert info["scheduling backend"] in {"native", "python"}
    assert {"gaia-native", "python", "platform", "plugins"} <= set(info)
    assert info["plugins"] == {}


def test_version_verbose_of_the_real_command(gaia_home: Home) -> None:
    proc = gaia(gaia_home, "--plugins", "", "version", "--verbose")
    assert proc.returncode == 0
    assert f"gaia-core: {__version__}" in proc.stdout and "hashing backend: " in proc.stdout


# ---------------------------------------------------------------- plugins


def test_plugins_with_none_selected(cli_runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAIA_LOAD_PLUGINS", "")
    result = cli_runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0
    assert result.output.startswith("No plugins")
    assert json.loads(cli_runner.invoke(cli, ["plugins", "--json"]).output) == []


def test_plugins_with_none_selected_in_a_real_process(gaia_home: Home) -> None:
    proc = gaia(gaia_home, "plugins", GAIA_LOAD_PLUGINS="")
    assert proc.returncode == 0 and proc.stdout.startswith("No plugins")
    assert "Traceback" not in proc.stderr


def test_plugins_lists_a_fake_plugin_as_json(cli_runner: CliRunner, fake_dists, good_plugin: str) -> None:
    fake_dists.add("gaia-fake-good", good_plugin, version="2.0.0")
    result = cli_runner.invoke(cli, ["--plugins", "gaia-fake-good", "plugins", "--json"])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.output)
    assert entry["name"] == "gaia-fake-good" and entry["version"] == "2.0.0" and entry["status"] == "active"
    assert entry["roles"] == ["benchmark", "prover", "runner"]
    assert "runner:echo" in entry["provides"] and entry["error"] is None


def test_plugins_all_shows_blocked(cli_runner: CliRunner, fake_dists, good_plugin: str) -> None:
    fake_dists.add("gaia-fake-good", good_plugin)
    fake_dists.add("gaia-fake-other", good_plugin)
    shown = json.loads(cli_runner.invoke(cli, ["--plugins", "gaia-fake-good", "plugins", "--json"]).output)
    assert [e["name"] for e in shown] == ["gaia-fake-good"]
    every = json.loads(cli_runner.invoke(cli, ["--plugins", "gaia-fake-good", "plugins", "--json", "--all"]).output)
    assert {e["name"]: e["status"] for e in every}["gaia-fake-other"] == "blocked"
    table = cli_runner.invoke(cli, ["--plugins", "gaia-fake-good", "plugins", "--all"])
    assert "gaia-fake-other" in table.output and "blocked" in table.output


def test_plugins_with_a_broken_plugin_still_works(gaia_home: Home, fake_dists, good_plugin: str) -> None:
    fake_dists.add("gaia-fake-broken", BROKEN_PLUGIN)
    fake_dists.add("gaia-fake-good", good_plugin)
    proc = gaia(gaia_home, "--plugins", "gaia-fake-broken,gaia-fake-good", "plugins", site=fake_dists.root)
    assert proc.returncode == 0, proc.stderr
    assert "gaia-fake-good" in proc.stdout and "active" in proc.stdout
    assert "gaia-fake-broken failed: ModuleNotFoundError: No module named 'package_that_does_not_exist'" in proc.stderr
    assert "remedy: upgrade or reinstall it (`pip install -U gaia-fake-broken`)" in proc.stderr
    assert "Traceback" not in proc.stderr
    listed = json.loads(gaia(gaia_home, "--plugins", "gaia-fake-broken", "plugins", "--json",
                             site=fake_dists.root).stdout)
    assert listed[0]["status"] == "failed" and listed[0]["remedy"]


def test_a_plugin_adds_a_command(gaia_home: Home, fake_dists) -> None:
    fake_dists.add("gaia-fake-cmd", COMMAND_PLUGIN)
    proc = gaia(gaia_home, "--plugins", "gaia-fake-cmd", "hello", "world", site=fake_dists.root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello world\n"
    listed = gaia(gaia_home, "--plugins", "gaia-fake-cmd", "plugins", "--json", site=fake_dists.root)
    assert json.loads(listed.stdout)[0]["hooks"] == ["gaia_register_commands"]


def test_bad_plugins_name_exits_5(gaia_home: Home) -> None:
    proc = gaia(gaia_home, "--plugins", "gaia-no-such-plugin", "plugins")
    assert proc.returncode == 5
    assert "unknown plugin(s): gaia-no-such-plugin" in one_line_error(proc)


def test_debug_shows_the_traceback(gaia_home: Home) -> None:
    proc = gaia(gaia_home, "--debug", "--plugins", "gaia-no-such-plugin", "plugins")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "PluginError" in proc.stderr
    assert gaia(gaia_home, "--plugins", "gaia-nope", "plugins", GAIA_DEBUG="1").stderr.count("Traceback") == 1


# ---------------------------------------------------------------- init


def test_init_creates_keys_and_config(cli_runner: CliRunner, gaia_home: Home) -> None:
    result = cli_runner.invoke(cli, ["init", "--name", "lab-1"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((gaia_home.identity_dir / SIGNING_FILE).stat().st_mode) == 0o600
    node_id = Identity.load(gaia_home.identity_dir).node_id
    assert f"node id:  {node_id}" in result.output
    assert 'name = "lab-1"' in gaia_home.config_file.read_text()


def test_init_again_refuses_then_force_replaces(gaia_home: Home) -> None:
    first = gaia(gaia_home, "--plugins", "", "init")
    assert first.returncode == 0, first.stderr
    node_id = Identity.load(gaia_home.identity_dir).node_id
    again = gaia(gaia_home, "--plugins", "", "init")
    assert again.returncode == 4
    assert "a node identity already exists" in one_line_error(again)
    assert Identity.load(gaia_home.identity_dir).node_id == node_id
    forced = gaia(gaia_home, "--plugins", "", "init", "--force")
    assert forced.returncode == 0
    assert Identity.load(gaia_home.identity_dir).node_id != node_id


def test_home_option_beats_the_environment(cli_runner: CliRunner, tmp_path: Path) -> None:
    result = cli_runner.invoke(cli, ["--home", str(tmp_path / "elsewhere"), "init"])
    assert result.exit_code == 0
    assert Identity.exists(tmp_path / "elsewhere" / "identity")


# ---------------------------------------------------------------- config show


def test_config_show_defaults(cli_runner: CliRunner, gaia_home: Home) -> None:
    result = cli_runner.invoke(cli, ["config", "show"])
    assert result.exit_code == 0
    assert "(absent: defaults)" in result.output and "[node]" in result.output
    data = json.loads(cli_runner.invoke(cli, ["config", "show", "--json"]).output)
    assert data["node"]["listen"] == "tcp://127.0.0.1:7700"
    assert data["offer"]["capabilities"] == []


def test_config_show_includes_file_values_and_plugin_tables(cli_runner: CliRunner, gaia_home: Home) -> None:
    gaia_home.config_file.write_text('[node]\nname = "box"\n[gaia-fake]\nx = 1\n')
    data = json.loads(cli_runner.invoke(cli, ["config", "show", "--json"]).output)
    assert data["node"]["name"] == "box" and data["gaia-fake"] == {"x": 1}
    text = cli_runner.invoke(cli, ["config", "show"]).output
    assert "(absent" not in text and "[gaia-fake]" in text


def test_malformed_config_exits_3_with_one_line(gaia_home: Home) -> None:
    gaia_home.config_file.write_text("[node\n")
    proc = gaia(gaia_home, "config", "show")
    assert proc.returncode == 3
    assert "is not valid TOML" in one_line_error(proc)
    gaia_home.config_file.write_text("[node]\ncores = -2\n")
    proc = gaia(gaia_home, "config", "show", "--json")
    assert proc.returncode == 3
    assert "'cores' must be >= 0" in one_line_error(proc)


# ---------------------------------------------------------------- task


def test_task_help_lists_the_job_controls(cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(cli, ["task", "--help"])
    assert result.exit_code == 0
    for command in ("run", "submit", "watch", "cancel", "retry", "result", "list"):
        assert f"  {command} " in result.output
    assert "Ctrl-C stops waiting" in cli_runner.invoke(cli, ["task", "submit", "--help"]).output
