"""``gaia config get``, ``set`` and ``show`` (secrets masked), in process and as a real ``gaia`` process."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib

import pytest
from click.testing import CliRunner

from gaia_core import config as config_mod
from gaia_core.cli import cli
from gaia_core.commands.config_cmd import is_secret, mask_secrets, parse_value
from gaia_core.config import Home
from gaia_core.control import SOCKET_NAME
from gaia_core.errors import ConfigError, UsageError


def gaia(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gaia_core`` in a child process with an isolated home."""
    environ = {k: v for k, v in os.environ.items() if k not in {"GAIA_DEBUG", "GAIA_LOAD_PLUGINS"}}
    environ.update(GAIA_HOME=str(home.root), GAIA_BACKEND="python", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "gaia_core", *args], capture_output=True, text=True,
                          env=environ, timeout=120, check=False)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one ``Error:`` line of a failed command, which printed no traceback."""
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), proc.stderr
    return lines[0]


@pytest.fixture
def initialised(cli_runner: CliRunner, gaia_home: Home) -> Home:
    """A home with the config.toml `gaia init` writes (its header comment included)."""
    assert cli_runner.invoke(cli, ["init", "--name", "box"]).exit_code == 0
    return gaia_home


def file_data(home: Home) -> dict[str, object]:
    return tomllib.loads(home.config_file.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- get


def test_get_prints_file_values_and_defaults(cli_runner: CliRunner, initialised: Home) -> None:
    assert cli_runner.invoke(cli, ["config", "get", "node.name"]).stdout == "box\n"
    assert cli_runner.invoke(cli, ["config", "get", "network.heartbeat_s"]).stdout == "1.0\n"
    assert cli_runner.invoke(cli, ["config", "get", "network.bootstrap"]).stdout == "[]\n"
    assert json.loads(cli_runner.invoke(cli, ["config", "get", "node.listen", "--json"]).stdout) == \
        "tcp://127.0.0.1:7700"


def test_get_a_table_prints_it_as_toml(cli_runner: CliRunner, initialised: Home) -> None:
    result = cli_runner.invoke(cli, ["config", "get", "node"])
    assert result.exit_code == 0
    assert tomllib.loads(result.stdout)["name"] == "box"
    assert json.loads(cli_runner.invoke(cli, ["config", "get", "queue", "--json"]).stdout)["capacity"] == 10_000


def test_get_without_a_config_file_gives_the_default(cli_runner: CliRunner, gaia_home: Home) -> None:
    assert cli_runner.invoke(cli, ["config", "get", "node.cores"]).stdout == "0\n"
    assert not gaia_home.config_file.exists()


def test_get_an_unset_key_says_so_on_stderr(cli_runner: CliRunner, initialised: Home) -> None:
    result = cli_runner.invoke(cli, ["config", "get", "plugins.load"])
    assert result.exit_code == 0 and result.stdout == "" and "not set" in result.stderr
    assert cli_runner.invoke(cli, ["config", "get", "plugins.load", "--json"]).stdout == "null\n"


def test_get_an_unknown_key_suggests_the_near_one(cli_runner: CliRunner, initialised: Home) -> None:
    result = cli_runner.invoke(cli, ["config", "get", "node.nme"])
    assert isinstance(result.exception, UsageError)
    assert "did you mean node.name?" in str(result.exception)
    proc = gaia(initialised, "config", "get", "nothing.here")
    assert proc.returncode == 2
    assert "no key 'nothing.here'" in one_error_line(proc)


def test_get_refuses_what_is_not_a_dotted_key(cli_runner: CliRunner, initialised: Home) -> None:
    for key in ("", "node..name", "node.na me", "[node]"):
        assert isinstance(cli_runner.invoke(cli, ["config", "get", key]).exception, UsageError), key


# ---------------------------------------------------------------- set


def test_set_writes_the_value_and_keeps_the_rest(cli_runner: CliRunner, initialised: Home) -> None:
    before = file_data(initialised)
    result = cli_runner.invoke(cli, ["config", "set", "node.name", "other box"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('node.name = "other box"')
    after = file_data(initialised)
    assert after["node"] == {**before["node"], "name": "other box"}  # type: ignore[dict-item]
    assert {k: v for k, v in after.items() if k != "node"} == {k: v for k, v in before.items() if k != "node"}
    assert cli_runner.invoke(cli, ["config", "get", "node.name"]).stdout == "other box\n"
    assert stat.S_IMODE(initialised.config_file.stat().st_mode) == 0o600


def test_set_keeps_the_comments_at_the_top(cli_runner: CliRunner, initialised: Home) -> None:
    header = initialised.config_file.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("# GAIA node configuration")
    assert cli_runner.invoke(cli, ["config", "set", "node.cores", "2"]).exit_code == 0
    assert initialised.config_file.read_text(encoding="utf-8").splitlines()[0] == header


def test_set_creates_the_file_when_absent(cli_runner: CliRunner, gaia_home: Home) -> None:
    assert cli_runner.invoke(cli, ["config", "set", "node.name", "fresh"]).exit_code == 0
    assert file_data(gaia_home) == {"node": {"name": "fresh"}}
    assert stat.S_IMODE(gaia_home.config_file.stat().st_mode) == 0o600


@pytest.mark.parametrize(("key", "text", "value"), [
    ("node.cores", "4", 4),
    ("network.heartbeat_s", "0.5", 0.5),
    ("verification.spot_check", "1", 1),
    ("network.bootstrap", '["tcp://10.0.0.2:7700", "tcp://10.0.0.3:7700"]',
     ["tcp://10.0.0.2:7700", "tcp://10.0.0.3:7700"]),
    ("node.name", '"quoted name"', "quoted name"),
    ("node.name", "bare-word", "bare-word"),
    ("node.log_level", "debug", "debug"),
    ("gaia-fake.enabled", "true", True),
    ("gaia-fake.deep.level", "3", 3),
])
def test_set_parses_values_as_toml(cli_runner: CliRunner, initialised: Home, key: str, text: str,
                                   value: object) -> None:
    result = cli_runner.invoke(cli, ["config", "set", key, text])
    assert result.exit_code == 0, result.output
    data: object = file_data(initialised)
    for part in key.split("."):
        assert isinstance(data, dict)
        data = data[part]
    assert data == value
    config_mod.load(initialised)  # the file still loads


def test_set_takes_a_negative_number_as_the_value(cli_runner: CliRunner, initialised: Home) -> None:
    result = cli_runner.invoke(cli, ["config", "set", "gaia-fake.offset", "-3"])
    assert result.exit_code == 0, result.output
    assert file_data(initialised)["gaia-fake"] == {"offset": -3}


@pytest.mark.parametrize(("key", "text", "reason"), [
    ("node.cores", "-3", "'cores' must be >= 0"),
    ("node.cores", "2000", "'cores' must be <= 1024"),
    ("network.bootstrap", "tcp://10.0.0.2:7700", "a string where an array belongs"),
    ("network.heartbeat_s", "1e-6", "'heartbeat_s' must be >= 0.1"),
    ("node.listen", "tcp://0.0.0.0:99999", "out of range"),
    ("node.log_level", "loud", "log_level"),
    ("node.nme", "x", "nme"),
    ("nod.name", "x", "did you mean [node]?"),
])
def test_set_refuses_an_invalid_config_and_leaves_the_file(cli_runner: CliRunner, initialised: Home, key: str,
                                                           text: str, reason: str) -> None:
    before = initialised.config_file.read_bytes()
    result = cli_runner.invoke(cli, ["config", "set", key, text])
    assert isinstance(result.exception, ConfigError)
    assert reason in str(result.exception) and "is unchanged" in str(result.exception)
    assert initialised.config_file.read_bytes() == before


def test_an_invalid_value_is_one_line_and_exit_3(initialised: Home) -> None:
    before = initialised.config_file.read_bytes()
    proc = gaia(initialised, "config", "set", "node.cores", "-3")
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert "node.cores = -3" in line and "must be >= 0" in line
    assert initialised.config_file.read_bytes() == before


@pytest.mark.parametrize(("key", "text"), [
    ("node", "x"),                      # a table, not a key
    ("node.name", "{ a = 1 }"),         # an inline table
    ("node.name", '"unterminated'),     # not TOML and not a bare word
    ("node.name", "[1, 2"),
    ("node.name.first", "x"),           # node.name is a value, not a table
])
def test_set_refuses_keys_and_values_it_cannot_write(cli_runner: CliRunner, initialised: Home, key: str,
                                                     text: str) -> None:
    before = initialised.config_file.read_bytes()
    result = cli_runner.invoke(cli, ["config", "set", key, text])
    assert isinstance(result.exception, UsageError), result.output
    assert initialised.config_file.read_bytes() == before


def test_set_refuses_to_overwrite_a_table(cli_runner: CliRunner, initialised: Home) -> None:
    assert cli_runner.invoke(cli, ["config", "set", "gaia-fake.deep.level", "1"]).exit_code == 0
    result = cli_runner.invoke(cli, ["config", "set", "gaia-fake.deep", "2"])
    assert isinstance(result.exception, UsageError) and "it is a table" in str(result.exception)


def test_set_leaves_a_malformed_file_alone(cli_runner: CliRunner, gaia_home: Home) -> None:
    gaia_home.config_file.write_text("[node\n# mine\n")
    result = cli_runner.invoke(cli, ["config", "set", "node.name", "x"])
    assert isinstance(result.exception, ConfigError) and "is not valid TOML" in str(result.exception)
    assert gaia_home.config_file.read_text() == "[node\n# mine\n"


def test_set_says_a_running_node_must_restart(cli_runner: CliRunner, initialised: Home) -> None:
    assert "restart" not in cli_runner.invoke(cli, ["config", "set", "node.cores", "2"]).stderr
    (initialised.root / SOCKET_NAME).touch()
    assert "restart it" in cli_runner.invoke(cli, ["config", "set", "node.cores", "3"]).stderr


def test_parse_value() -> None:
    assert parse_value("12") == 12 and parse_value("-1.5") == -1.5 and parse_value("false") is False
    assert parse_value("plain text") == "plain text" and parse_value("'single'") == "single"
    assert parse_value("[1, 2]") == [1, 2]


# ---------------------------------------------------------------- show


SECRETS = """
[gaia-fake]
api_token = "t0ps3cret"
public = "visible"
secret_key_file = "/keys/x.key"
[gaia-fake.credentials]
user = "me"
password = "hunter2"
[keys]
signing = "abc"
"""


def test_show_masks_secrets(cli_runner: CliRunner, gaia_home: Home) -> None:
    gaia_home.config_file.write_text('[node]\nname = "box"\n' + SECRETS)
    data = json.loads(cli_runner.invoke(cli, ["config", "show", "--json"]).stdout)
    fake = data["gaia-fake"]
    assert fake["api_token"] == "***" and fake["secret_key_file"] == "***"
    assert fake["credentials"] == {"user": "me", "password": "***"}
    assert data["keys"] == {"signing": "***"}
    assert fake["public"] == "visible" and data["node"]["name"] == "box"
    text = cli_runner.invoke(cli, ["config", "show"]).stdout
    assert "hunter2" not in text and "t0ps3cret" not in text and "abc" not in text
    assert 'password = "***"' in text


def test_show_secrets_on_request(cli_runner: CliRunner, gaia_home: Home) -> None:
    gaia_home.config_file.write_text(SECRETS)
    data = json.loads(cli_runner.invoke(cli, ["config", "show", "--json", "--show-secrets"]).stdout)
    assert data["gaia-fake"]["credentials"]["password"] == "hunter2" and data["keys"] == {"signing": "abc"}
    assert "hunter2" in cli_runner.invoke(cli, ["config", "show", "--show-secrets"]).stdout


def test_mask_secrets_keeps_shape_and_unset_values() -> None:
    assert mask_secrets({"a": {"token": None, "n": 1}, "Password": [1]}) == {"a": {"token": None, "n": 1},
                                                                            "Password": "***"}
    assert is_secret("comm_zmq.CURVE_KEY") and is_secret("x.access_token") and not is_secret("node.name")


def test_kernel_defaults_hold_no_secret_words() -> None:
    """No kernel key is masked: `config show` shows every kernel value as it is."""
    data = config_mod.Config().to_dict()
    assert mask_secrets(data) == data
