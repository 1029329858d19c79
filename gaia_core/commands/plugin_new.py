"""``gaia plugin new --role ROLE NAME``: write a plugin distribution that passes its conformance suite.

The files come from ``gaia_core/templates/plugin``: ``common/`` (pyproject with the entry point,
README, package ``__init__``, tests' conftest and a registration test) and one directory per role
(the hook module, the provider, and a test that subclasses the role's conformance suite).
"""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path

import click

from gaia_core import __version__
from gaia_core.errors import UsageError
from gaia_core.roles import ROLES

#: Where each template file goes in the new distribution (``{package}`` is the import package).
LAYOUT = {
    "common/pyproject.toml.tmpl": "pyproject.toml",
    "common/README.md.tmpl": "README.md",
    "common/__init__.py.tmpl": "{package}/__init__.py",
    "{role}/plugin.py.tmpl": "{package}/plugin.py",
    "{role}/provider.py.tmpl": "{package}/provider.py",
    "common/conftest.py.tmpl": "tests/conftest.py",
    "common/test_plugin.py.tmpl": "tests/test_plugin.py",
    "{role}/test_conformance.py.tmpl": "tests/test_conformance.py",
}
#: One line on what the example provider of each role does.
SUMMARIES = {
    "runner": "an example runner (echo, fail, spin) with fuel, timeout and output limits",
    "benchmark": "an example benchmark (core count, a timed loop, memory and load samples)",
    "prover": "an example prover (a signed commitment to the task and its result)",
    "queue": "an example bounded, fair task queue on the kernel's scheduler",
    "transport": "an example transport (length-prefixed frames over TCP)",
}
_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")


def names(role: str, name: str) -> dict[str, str]:
    """The template variables for plugin ``name`` of ``role`` (UsageError for a name that cannot be one)."""
    dist = name.strip().lower().replace("_", "-")
    if not _NAME.match(dist) or len(dist) > 64:
        raise UsageError(f"plugin name {name!r} is not a distribution name",
                         hint="use lowercase letters, digits and single dashes, e.g. gaia-runner-echo")
    if not dist.startswith("gaia-"):
        dist = f"gaia-{role}-{dist}"
    short = dist.removeprefix("gaia-").removeprefix(f"{role}-") or role
    if not short[0].isalpha():
        raise UsageError(f"plugin name {name!r} leaves {short!r} as the provider's name, which must start with "
                         "a letter", hint=f"e.g. gaia-{role}-example")
    cls = "".join(part.capitalize() for part in short.split("-")) + role.capitalize()
    major, minor, *_ = __version__.split(".")
    return {
        "dist": dist, "package": dist.replace("-", "_"), "name": short, "cls": cls,
        "role": role, "Role": role.capitalize(), "hook": "gaia_benchmarks" if role == "benchmark" else f"gaia_{role}s",
        "spec_key": "scheme" if role == "prover" else "name", "summary": SUMMARIES[role],
        "gaia_version": __version__, "gaia_next": f"{major}.{int(minor) + 1}",
    }


def render(role: str, name: str) -> dict[str, str]:
    """The text of every file of plugin ``name`` of ``role``, by path inside its distribution."""
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}", hint=f"choose one of {', '.join(ROLES)}")
    values = names(role, name)
    templates = resources.files("gaia_core") / "templates" / "plugin"
    return {target.format(package=values["package"]):
            string.Template((templates / source.format(role=role)).read_text(encoding="utf-8")).substitute(values)
            for source, target in LAYOUT.items()}


def generate(role: str, name: str, directory: Path) -> Path:
    """Write the distribution for plugin ``name`` of ``role`` under ``directory``; return its root."""
    files = render(role, name)
    values = names(role, name)
    root = directory / values["dist"]
    if root.exists() and any(root.iterdir()):
        raise UsageError(f"{root} already exists and is not empty", hint="choose another --dir or name")
    try:
        for target, text in files.items():
            path = root / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        (root / values["package"] / "py.typed").touch()
    except OSError as exc:
        raise UsageError(f"cannot write the plugin under {directory}: {exc.strerror or exc}",
                         hint="choose a --dir you can write to") from None
    return root


@click.group()
def plugin() -> None:
    """Tools for plugin authors."""


@plugin.command("new")
@click.option("--role", type=click.Choice(ROLES), required=True, help="The role the plugin's provider plays.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to create the distribution's directory.")
@click.argument("name")
def new(role: str, name: str, directory: Path) -> None:
    """Write plugin NAME (e.g. gaia-runner-echo, or just echo) that passes its role's conformance suite."""
    root = generate(role, name, directory)
    values = names(role, name)
    click.echo(f"wrote {root}")
    click.echo(f"next: pip install -e '{root}[test]' && pytest {root} && gaia plugins --check {values['dist']}")
