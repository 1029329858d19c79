"""``gaia service install``: run this home's node as a systemd user service (started at login, restarted
on failure, stopped with SIGTERM so it drains)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from gaia_core.errors import UsageError
from gaia_core.state import State

#: The unit's file name.
UNIT = "gaia-node.service"


def unit_dir() -> Path:
    """Where systemd looks for the user's units: ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config`` by default)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def _quoted(arg: str) -> str:
    """``arg`` as one word of a systemd command line (double-quoted, ``%`` specifiers escaped)."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def unit_text(python: str, home: Path, plugins: str | None) -> str:
    """The unit file that runs ``python -m gaia_core --home HOME node`` (with ``--plugins`` when given)."""
    args = [python, "-m", "gaia_core", "--home", str(home), *(["--plugins", plugins] if plugins is not None else []),
            "node"]
    return f"""[Unit]
Description=GAIA node ({str(home).replace("%", "%%")})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={" ".join(_quoted(a) for a in args)}
Restart=on-failure
RestartSec=10
KillSignal=SIGTERM
TimeoutStopSec=60
Nice=10

[Install]
WantedBy=default.target
"""


@click.group()
def service() -> None:
    """Run the node as a systemd user service."""


@service.command()
@click.option("--force", is_flag=True, help="Replace a unit file that differs.")
@click.pass_obj
def install(state: State, force: bool) -> None:
    """Write a systemd user unit that runs this home's node, and say how to enable it."""
    if not Path(state.home.identity_dir).exists():
        raise UsageError(f"no node keys in {state.home.root}", hint="run `gaia init` first")
    path = unit_dir() / UNIT
    text = unit_text(sys.executable, state.home.root, state.plugin_list)
    try:
        if path.exists() and path.read_text(encoding="utf-8") != text and not force:
            raise UsageError(f"{path} exists and runs something else", hint="pass --force to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}",
                         hint="check $XDG_CONFIG_HOME (or ~/.config): systemd reads user units from there") from None
    click.echo(f"wrote {path}")
    click.echo("start it now and at every login:\n"
               "  systemctl --user daemon-reload && systemctl --user enable --now gaia-node.service\n"
               "keep it running after logout:  loginctl enable-linger $USER\n"
               "its log:  journalctl --user -u gaia-node -f    status:  gaia status")
