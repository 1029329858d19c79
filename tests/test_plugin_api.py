"""The declared plugin API (gaia_core.plugin_api): what it exports, who imports it, how it ships."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

import gaia_core
from gaia_core import apidoc, docgen, plugin_api

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugin-authoring.md"
PLUGIN_DIRS = sorted(p.parent for p in ROOT.glob("plugins/gaia_*/pyproject.toml"))
#: Kernel modules a first-party plugin package may import (its tests may also use gaia_core.testing).
ALLOWED = {"gaia_core.plugin_api", "gaia_core.testing"}


def _kernel_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``line: module`` for each import of a gaia_core module in ``path`` that is not the API."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module] if node.module != "gaia_core" else [f"gaia_core.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        for module in modules:
            if module.split(".")[0] == "gaia_core" and not any(
                    module == ok or module.startswith(ok + ".") for ok in ALLOWED):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {module}")
    return found


def test_all_names_exist_once() -> None:
    assert len(plugin_api.__all__) == len(set(plugin_api.__all__))
    missing = [name for name in plugin_api.__all__ if not hasattr(plugin_api, name)]
    assert missing == []


def test_the_module_exports_nothing_public_beyond_all() -> None:
    public = {name for name in vars(plugin_api) if not name.startswith("_") and name != "annotations"}
    assert public == set(plugin_api.__all__), "import a name privately or add it to __all__"


def test_the_api_holds_what_every_role_needs() -> None:
    needed = {"hookimpl", "Task", "TaskResult", "Limits", "Proof", "Verdict", "Status", "BenchmarkReport",
              "ResourceSample", "NodeRecord", "Envelope", "GaiaError", "RejectedError", "ConfigError",
              "content_id", "codec", "admission", "NodeContext", "PeerInfo", "QueueStats",
              *(f"{role.capitalize()}Spec" for role in plugin_api.ROLES),
              "Runner", "Benchmark", "Prover", "Transport", "Queue"}
    assert needed <= set(plugin_api.__all__)


def test_hookimpl_is_the_kernels_marker() -> None:
    assert plugin_api.hookimpl is gaia_core.hookimpl


def test_the_generator_groups_every_name_once() -> None:
    grouped = [name for _, names in apidoc.groups() for name in names]
    assert grouped == list(plugin_api.__all__)
    assert all(title[0].isupper() for title, _ in apidoc.groups())


@pytest.mark.parametrize("name", plugin_api.__all__)
def test_every_name_has_a_documented_heading_in_the_guide(name: str) -> None:
    entry = apidoc.describe(name)
    heading, _, text = entry.partition("\n\n")
    assert heading.startswith(f"#### {name}")
    assert heading in GUIDE.read_text(encoding="utf-8"), "run `make docs`"
    assert text.strip(), f"{name} has no description: give it a docstring"


def test_the_guide_holds_the_current_api_reference() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert text.count(docgen.API_START) == 1 and text.count(docgen.API_END) == 1
    block = text.split(docgen.API_START, 1)[1].split(docgen.API_END, 1)[0]
    assert block.strip() == apidoc.reference().strip(), "run `make docs` (python -m gaia_core.docgen ...)"


def test_native_functions_are_documented_with_their_typed_reference() -> None:
    heading = apidoc.describe("content_id").split("\n", 1)[0]
    assert heading.startswith("#### content_id(data: Buffer") and heading.endswith(") -> str"), heading


def test_the_checker_sees_kernel_imports(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("from gaia_core import hookimpl\nimport gaia_core.model\nfrom gaia_core.plugin_api import Task\n"
                      "from gaia_core.testing.conformance.runner import RunnerTests\nfrom . import sibling\n",
                      encoding="utf-8")
    assert _kernel_imports(module, tmp_path) == ["probe.py:1: gaia_core.hookimpl", "probe.py:2: gaia_core.model"]


@pytest.mark.parametrize("plugin", PLUGIN_DIRS, ids=lambda p: p.name)
def test_first_party_plugins_import_the_kernel_only_through_the_api(plugin: Path) -> None:
    package = plugin / plugin.name
    found = [hit for path in sorted(package.rglob("*.py")) for hit in _kernel_imports(path)]
    assert found == [], "import these from gaia_core.plugin_api instead:\n" + "\n".join(found)


@pytest.mark.parametrize("project", [ROOT, *PLUGIN_DIRS], ids=lambda p: p.name)
def test_every_package_is_marked_typed_and_ships_the_marker(project: Path) -> None:
    config = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    package = "gaia_core" if project == ROOT else project.name
    assert (project / package / "py.typed").is_file()
    assert "py.typed" in config["tool"]["setuptools"]["package-data"][package], "the wheel must ship py.typed"
