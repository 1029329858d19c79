"""``gaia config show|get|set``: read and change the node's config.toml by dotted keys (``node.name``).

``set`` parses the value as a TOML value (a bare word that is not one is taken as a string), builds
the whole resulting configuration and loads it as the node would before anything is written, so an
invalid value is refused and the file is left as it was. The file is rewritten with tomli-w, the
project's TOML writer: the comment lines at its top are kept, other comments are not.
"""

from __future__ import annotations

import copy
import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from gaia_core import config as config_mod
from gaia_core.console import print_json
from gaia_core.errors import ConfigError, UsageError
from gaia_core.state import State

#: A key or table whose dotted path contains one of these words holds a secret: ``show`` masks it.
SECRET_WORDS = ("key", "secret", "token", "password")
MASK = "***"
_KEY_PART = re.compile(r"[A-Za-z0-9_-]+\Z")


def is_secret(path: str) -> bool:
    """Whether a dotted path names a secret (any part contains key, secret, token or password)."""
    lowered = path.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_secrets(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``data`` with the value of every secret path replaced by ``***`` (tables keep their shape)."""
    masked: dict[str, Any] = {}
    for name, value in data.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            masked[name] = mask_secrets(value, f"{path}.") if not is_secret(path) else _mask_all(value)
        else:
            masked[name] = MASK if is_secret(path) and value is not None else value
    return masked


def _mask_all(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _mask_all(v) if isinstance(v, Mapping) else (None if v is None else MASK) for k, v in data.items()}


def split_key(key: str, *, tables: bool = False) -> list[str]:
    """``node.name`` as ``["node", "name"]``; UsageError unless it is TABLE.KEY (or, with ``tables``, TABLE)."""
    parts = key.split(".")
    if len(parts) < (1 if tables else 2) or not all(_KEY_PART.match(part) for part in parts):
        raise UsageError(f"{key!r} is not a dotted key of the form TABLE.KEY",
                         hint="e.g. node.name or network.bootstrap; see `gaia config show`")
    return parts


def lookup(data: Mapping[str, Any], parts: list[str]) -> Any:
    """The value at ``parts`` in ``data``; UsageError naming the first missing part (and a close match)."""
    node: Any = data
    for depth, part in enumerate(parts):
        if not isinstance(node, Mapping) or part not in node:
            where = ".".join(parts[:depth]) or "the configuration"
            near = sorted(node) if isinstance(node, Mapping) else []
            guess = difflib.get_close_matches(part, near, n=1)
            hint = f"did you mean {'.'.join([*parts[:depth], guess[0]])}?" if guess else "see `gaia config show`"
            raise UsageError(f"no key {'.'.join(parts)!r}: {where} has no {part!r}", hint=hint)
        node = node[part]
    return node


def toml_value(value: Any) -> str:
    """One value as TOML on one line (``"box"``, ``4``, ``["a", "b"]``, ``true``)."""
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return config_mod.to_toml({"v": value}).partition("=")[2].strip()


def parse_value(text: str) -> Any:
    """``text`` as a TOML value; text that is not one (a bare word) is a string. Tables are refused."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if "\n" in text or text.lstrip().startswith(("[", "{", '"', "'")):
            raise UsageError(f"{text!r} is not a TOML value",
                             hint='quote strings and write arrays in brackets, e.g. \'["tcp://10.0.0.2:7700"]\'') \
                from None
        return text
    if isinstance(value, dict):
        raise UsageError(f"{text!r} is a table; set one key at a time", hint="e.g. gaia config set TABLE.KEY VALUE")
    return value


@click.group()
def config() -> None:
    """Show, read and change the node's configuration (config.toml)."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--show-secrets", is_flag=True, help="Print secrets (keys, tokens, passwords) instead of ***.")
@click.pass_obj
def show(state: State, as_json: bool, show_secrets: bool) -> None:
    """Print the effective configuration (defaults overlaid with config.toml), secrets as ***."""
    data = state.config().to_dict()
    if not show_secrets:
        data = mask_secrets(data)
    if as_json:
        print_json(data)
    else:
        click.echo(f"# {state.home.config_file}" + ("" if state.home.config_file.exists() else " (absent: defaults)"))
        click.echo(config_mod.to_toml(data), nl=False)


@config.command("get")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print the value as JSON.")
@click.pass_obj
def get(state: State, key: str, as_json: bool) -> None:
    """Print the effective value of KEY (dotted, e.g. node.name; a table name prints the table)."""
    value = lookup(state.config().to_dict(), split_key(key, tables=True))
    if as_json:
        print_json(value)
    elif value is None:
        click.echo(f"({key} is not set)", err=True)
    elif isinstance(value, Mapping):
        click.echo(config_mod.to_toml(value), nl=False)
    elif isinstance(value, str):
        click.echo(value)
    else:
        click.echo(toml_value(value))


@config.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
@click.pass_obj
def set_(state: State, key: str, value: str) -> None:
    """Set KEY (dotted, e.g. node.name) to VALUE (a TOML value) in config.toml, if the result is valid.

    VALUE is parsed as TOML: 4, 0.5, true, "text", ["a", "b"]; a bare word is a string.
    """
    parts = split_key(key)
    parsed = parse_value(value)
    home = state.home
    path = home.config_file
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", hint="fix the file by hand first") from None
    new = copy.deepcopy(data)
    node: dict[str, Any] = new
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"cannot set {key!r}: {'.'.join(parts[:depth + 1])} is a value, not a table")
        node = child
    if isinstance(node.get(parts[-1]), dict):
        raise UsageError(f"cannot set {key!r}: it is a table", hint=f"set one of its keys, e.g. {key}.NAME")
    node[parts[-1]] = parsed
    unchanged = f"{path} is unchanged; `gaia config show` shows the keys and their current values"
    try:
        built = config_mod.from_dict(new, source=f"{key} = {toml_value(parsed)}")
    except ConfigError as exc:
        raise ConfigError(f"refused {exc.message}", hint=unchanged) from None
    effective = lookup(built.to_dict(), parts)
    if isinstance(parsed, float) and isinstance(effective, int) and not isinstance(effective, bool):
        raise ConfigError(f"refused {key} = {toml_value(parsed)}: a whole number belongs here, written without a "
                          f"point or exponent (this would be read as {effective})", hint=unchanged)
    config_mod.write_private(home.make_private().config_file, _leading_comments(text) + config_mod.to_toml(new))
    click.echo(f"{key} = {toml_value(parsed)}  (written to {path})")
    from gaia_core.control import socket_path

    running = socket_path(home)
    if running is not None and running.exists():
        click.echo("a node reads its config when it starts: restart it (`gaia stop`, then `gaia node`)", err=True)


def _read(path: Path) -> str:
    """config.toml's text ('' when absent); ConfigError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def _leading_comments(text: str) -> str:
    """The comment lines (and blank lines) at the top of ``text``, kept when the file is rewritten."""
    lines = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    head = "".join(lines).rstrip()
    return head + "\n\n" if head else ""

