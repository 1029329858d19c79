"""Layers: the library never imports the command line or a plugin; ``gaia --version`` and ``--help`` load no plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "gaia_core"
#: The command-line layer: click commands and the ``python -m`` tools built on them.
CLI_LAYER = {"gaia_core/cli.py", "gaia_core/__main__.py", "gaia_core/docgen.py"}
CLI_PACKAGES = ("gaia_core.cli", "gaia_core.commands")
#: Top-level packages of the first-party plugins (each plugins/<dir> holds one of that name).
PLUGIN_PACKAGES = tuple(sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / p.name).is_dir()))


def library_modules() -> list[Path]:
    """Every kernel module outside the command-line layer."""
    return sorted(p for p in KERNEL.rglob("*.py")
                  if str(p.relative_to(ROOT)) not in CLI_LAYER and "commands" not in p.relative_to(KERNEL).parts)


def imported_names(source: str) -> set[str]:
    """Every module ``source`` imports: import statements (at any depth) and ``import_module("...")`` calls."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in
              {"import_module", "__import__"} and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def forbidden(name: str) -> bool:
    """Whether a library module may not import ``name``: the CLI layer or a plugin package."""
    return any(name == p or name.startswith(p + ".") for p in (*CLI_PACKAGES, *PLUGIN_PACKAGES))


def test_the_walk_sees_every_kind_of_import() -> None:
    source = ("import gaia_runner_wasm.workloads\nfrom gaia_core import commands\n"
              "def f():\n    from gaia_core.commands.jobs import wait_for_job\n"
              "importlib.import_module('gaia_comm_zmq')\n")
    found = {n for n in imported_names(source) if forbidden(n)}
    assert found == {"gaia_runner_wasm.workloads", "gaia_core.commands", "gaia_core.commands.jobs",
                     "gaia_core.commands.jobs.wait_for_job", "gaia_comm_zmq"}
    assert not forbidden("gaia_core.config") and not forbidden("gaia_core.clients")


def test_the_walk_covers_the_library() -> None:
    names = {str(p.relative_to(ROOT)) for p in library_modules()}
    assert {"gaia_core/demo.py", "gaia_core/node.py", "gaia_core/plugins.py"} <= names
    assert not names & CLI_LAYER and not any("/commands/" in n for n in names)
    assert "gaia_runner_wasm" in PLUGIN_PACKAGES and "gaia_comm_zmq" in PLUGIN_PACKAGES


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(KERNEL)))
def test_no_library_module_imports_the_command_line_or_a_plugin(path: Path) -> None:
    wrong = sorted(n for n in imported_names(path.read_text(encoding="utf-8")) if forbidden(n))
    assert not wrong, f"{path.relative_to(ROOT)} imports {', '.join(wrong)}: library code must not"
