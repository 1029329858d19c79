"""Configuration: defaults, typed errors for bad files, plugin tables, TOML round trip."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from gaia_core import config as config_mod
from gaia_core.cli import cli
from gaia_core.config import Config, Home, NodeSection
from gaia_core.errors import ConfigError, UsageError
from gaia_core.model import Limits


def test_absent_file_means_defaults(gaia_home: Home) -> None:
    config = config_mod.load(gaia_home)
    assert config == Config()
    assert config.node.listen == "tcp://127.0.0.1:7700"
    assert config.offer == Limits()
    assert config.plugins.load is None and config.plugins.block == []
    assert config.network.security == "curve"


def test_home_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAIA_HOME", str(tmp_path / "env"))
    assert Home.resolve().root == tmp_path / "env"
    assert Home.resolve(tmp_path / "flag").root == tmp_path / "flag"
    monkeypatch.delenv("GAIA_HOME")
    assert Home.resolve().root.name == "gaia"


def test_home_layout(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert [home.config_file, home.identity_dir, home.cache_dir, home.state_db] == [
        tmp_path / "config.toml", tmp_path / "identity", tmp_path / "cache", tmp_path / "state.db"]


def test_file_values_overlay_defaults(gaia_home: Home) -> None:
    gaia_home.config_file.write_text(
        '[node]\nname = "lab-3"\ncores = 2\n[offer]\nfuel = 5\ncapabilities = ["clock"]\n'
        '[plugins]\nload = ["gaia-runner-wasm"]\n'
    )
    config = config_mod.load(gaia_home)
    assert (config.node.name, config.node.cores, config.node.log_level) == ("lab-3", 2, "info")
    assert config.offer.fuel == 5 and config.offer.capabilities == frozenset({"clock"})
    assert config.offer.timeout_s == Limits().timeout_s
    assert config.plugins.load == ["gaia-runner-wasm"]


def test_malformed_toml_is_a_config_error(gaia_home: Home) -> None:
    gaia_home.config_file.write_text("[node\nname = 1\n")
    with pytest.raises(ConfigError, match="is not valid TOML") as info:
        config_mod.load(gaia_home)
    assert str(gaia_home.config_file) in str(info.value)
    assert info.value.exit_code == 3


def test_undecodable_file_is_a_config_error(gaia_home: Home) -> None:
    gaia_home.config_file.write_bytes(b"\xff\xfe[node]\n")
    with pytest.raises(ConfigError, match="cannot read"):
        config_mod.load(gaia_home)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[node]\nnmae = 'x'\n", "nmae"),
        ("[node]\ncores = 'four'\n", "config.node.cores"),
        ("[node]\ncores = -1\n", "cores"),
        ("[node]\nlog_level = 'loud'\n", "log_level"),
        ("[network]\nsecurity = 'none'\n", "security"),
        ("[offer]\nfuel = 0\n", "fuel"),
        ("[offer]\ncapabilities = ['gpu']\n", "gpu"),
        ("[queue]\ncapacity = 0\n", "capacity"),
        ("node = 3\n", "config.node"),
        ("my_plugin = 3\n", "top-level key 'my_plugin' must be a [table]"),
    ],
    ids=["unknown-key", "wrong-type", "negative", "not-a-choice", "bad-security", "zero-fuel",
         "unknown-capability", "zero-capacity", "kernel-table-not-table", "plugin-key-not-table"],
)
def test_invalid_values_are_config_errors_naming_the_key(gaia_home: Home, text: str, needle: str) -> None:
    gaia_home.config_file.write_text(text)
    with pytest.raises(ConfigError) as info:
        config_mod.load(gaia_home)
    message = str(info.value)
    assert needle in message
    assert str(gaia_home.config_file) in message
    assert "\n" not in message


def test_plugin_tables_are_handed_over_as_sections(gaia_home: Home) -> None:
    gaia_home.config_file.write_text('[gaia-runner-wasm]\ncache_modules = 8\nengine = "cranelift"\n')
    config = config_mod.load(gaia_home)
    assert config.section("gaia-runner-wasm") == {"cache_modules": 8, "engine": "cranelift"}
    assert config.section("gaia-absent") == {}
    assert config.to_dict()["gaia-runner-wasm"] == {"cache_modules": 8, "engine": "cranelift"}


def test_to_toml_round_trips_through_tomllib() -> None:
    config = config_mod.from_dict({
        "node": {"name": 'quote " and \\ backslash', "cores": 3},
        "offer": {"capabilities": ["net", "clock"], "timeout_s": 2.5},
        "network": {"bootstrap": ["tcp://127.0.0.1:7701"]},
        "gaia-bench-psutil": {"enabled": True, "interval_s": 0.5},
    })
    data = config.to_dict()
    parsed = tomllib.loads(config_mod.to_toml(data))
    assert config_mod.from_dict(parsed) == config
    assert parsed["offer"]["capabilities"] == ["clock", "net"]
    assert parsed["gaia-bench-psutil"] == {"enabled": True, "interval_s": 0.5}


def test_to_toml_leaves_out_none_and_refuses_unknown_types() -> None:
    assert "load" not in config_mod.to_toml({"plugins": {"load": None, "block": []}})
    with pytest.raises(TypeError):
        config_mod.to_toml({"t": {"k": object()}})


def test_to_toml_writes_nested_tables_and_control_characters_that_load_back() -> None:
    data = {"node": {"name": "line one\nline two\ttab \x1b[31m"},
            "queue-memory": {"wait_samples": 10, "shares": {"alice": 2.0, "b o b": 1.0}}}
    text = config_mod.to_toml(data)
    assert "[queue-memory.shares]" in text
    assert tomllib.loads(text) == data


def test_config_show_prints_a_plugin_table_with_a_nested_table(cli_runner: CliRunner, gaia_home: Home) -> None:
    gaia_home.config_file.write_text('[queue-memory]\nwait_samples = 10\n[queue-memory.shares]\nalice = 2.0\n')
    result = cli_runner.invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = tomllib.loads(result.output)
    assert shown["queue-memory"] == {"wait_samples": 10, "shares": {"alice": 2.0}}


@pytest.mark.parametrize("name", ["two\nlines", "tab\there", "bell\a", "escape\x1b[2J", "bidi\u202eevil"])
def test_init_refuses_a_name_with_a_control_character_in_one_line(gaia_home: Home, name: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "gaia_core", "init", "--name", name], capture_output=True, text=True,
                          env={**os.environ, "GAIA_HOME": str(gaia_home.root)}, timeout=60, check=False)
    assert proc.returncode == UsageError.exit_code
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "control character" in proc.stderr
    assert not gaia_home.config_file.exists()


def test_init_writes_a_name_of_any_printable_text_that_loads_back(cli_runner: CliRunner, gaia_home: Home) -> None:
    name = 'quote " backslash \\ [table] = # ü 名前'
    assert cli_runner.invoke(cli, ["init", "--name", name]).exit_code == 0
    assert config_mod.load(gaia_home).node.name == name


def test_write_default_writes_a_loadable_file_of_every_table(gaia_home: Home) -> None:
    path = config_mod.write_default(gaia_home, name="lab-1")
    assert path == gaia_home.config_file
    text = path.read_text()
    assert text.startswith("# GAIA node configuration")
    assert set(tomllib.loads(text)) == {"node", "plugins", "offer", "admission", "network", "queue",
                                        "prover", "verification", "privacy"}
    assert config_mod.load(gaia_home) == Config(node=NodeSection(name="lab-1"))


def test_a_spot_check_rate_outside_zero_to_one_is_a_config_error(gaia_home: Home) -> None:
    gaia_home.config_file.write_text("[verification]\nspot_check = 1.5\n")
    with pytest.raises(ConfigError, match="spot_check"):
        config_mod.load(gaia_home)
