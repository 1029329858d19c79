"""One version for every first-party distribution, and plugins pin the kernel at it."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from gaia_core import __version__

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_PROJECTS = sorted(ROOT.glob("plugins/*/pyproject.toml"))


def _toml(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _pins(dependencies: list[str], name: str) -> list[str]:
    """The exact versions ``dependencies`` pin ``name`` at (``name==X`` only)."""
    found = [re.fullmatch(rf"{re.escape(name)}\s*==\s*([\w.+-]+)", d.strip()) for d in dependencies]
    return [m[1] for m in found if m]


def test_the_kernel_distribution_has_the_package_version() -> None:
    project = _toml(ROOT / "pyproject.toml")["project"]
    assert (project["name"], project["version"]) == ("gaia-core", __version__)
    assert metadata.version("gaia-core") == __version__, "reinstall: pip install -e ."


def test_the_kernel_pins_gaia_native_at_the_same_version() -> None:
    assert _pins(_toml(ROOT / "pyproject.toml")["project"]["dependencies"], "gaia-native") == [__version__]


def test_gaia_native_takes_its_version_from_cargo() -> None:
    project = _toml(ROOT / "native" / "pyproject.toml")["project"]
    assert project["name"] == "gaia-native"
    assert "version" not in project and "version" in project.get("dynamic", [])
    assert _toml(ROOT / "native" / "Cargo.toml")["package"]["version"] == __version__


def test_there_are_first_party_plugins() -> None:
    assert PLUGIN_PROJECTS, "no plugins/*/pyproject.toml found"


@pytest.mark.parametrize("path", PLUGIN_PROJECTS, ids=lambda p: p.parent.name)
def test_every_plugin_has_the_version_and_pins_the_kernel(path: Path) -> None:
    project = _toml(path)["project"]
    assert project["version"] == __version__
    assert _pins(project.get("dependencies", []), "gaia-core") == [__version__]


@pytest.mark.parametrize("path", PLUGIN_PROJECTS, ids=lambda p: p.parent.name)
def test_every_plugin_entry_point_follows_the_convention(path: Path) -> None:
    project = _toml(path)["project"]
    package = path.parent.name
    assert project["name"] == package.replace("_", "-")
    assert project["entry-points"]["gaia"] == {project["name"]: f"{package}.plugin"}
    assert (path.parent / package / "plugin.py").is_file()
