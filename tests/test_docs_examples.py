"""The examples of docs/plugin-authoring.md run: the tutorial plugin passes its suite, every other block parses."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gaia_core import plugin_api
from gaia_core.commands import plugin_new
from gaia_core.docgen import TUTORIAL

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugin-authoring.md"
BLOCK = re.compile(r'^```(?P<lang>\w+)(?: title="(?P<title>[^"]+)")?\n(?P<code>.*?)^```$', re.M | re.S)
#: Seconds the tutorial's test suite may take.
SUITE_TIMEOUT_S = 300


def _blocks(lang: str) -> list[tuple[str | None, str]]:
    return [(m["title"], m["code"]) for m in BLOCK.finditer(GUIDE.read_text(encoding="utf-8")) if m["lang"] == lang]


def _tutorial() -> dict[str, str]:
    return {title: code for lang in ("python", "toml") for title, code in _blocks(lang) if title}


def test_the_tutorial_shows_every_file_the_generator_writes() -> None:
    written = plugin_new.render(*TUTORIAL)
    shown = _tutorial()
    assert set(shown) == {path for path in written if path.endswith((".py", ".toml"))}
    assert all(shown[path] == written[path].rstrip() + "\n" for path in shown), "run `make docs`"


def test_the_tutorial_runner_passes_its_conformance_suite(tmp_path: Path) -> None:
    root = tmp_path / "gaia-runner-echo"
    for path, code in _tutorial().items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(root), "GAIA_HOME": str(tmp_path / "home")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                          "ignore::RuntimeWarning", "-rs"], cwd=root, env=env, capture_output=True, text=True,
                         timeout=SUITE_TIMEOUT_S, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", run.stdout)[1])
    assert passed >= 12 and "skipped" not in run.stdout and "failed" not in run.stdout, run.stdout[-2000:]


@pytest.mark.parametrize("code", [code for _, code in _blocks("python")], ids=lambda c: c.split("\n", 1)[0][:40])
def test_every_python_block_parses_and_imports_only_the_plugin_api(code: str) -> None:
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gaia_core"):
            if node.module == "gaia_core.plugin_api":
                assert {a.name for a in node.names} <= set(plugin_api.__all__)
            else:
                assert node.module.startswith("gaia_core.testing"), f"import {node.module} through the plugin API"
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("gaia_core") for a in node.names)


@pytest.mark.parametrize("code", [code for _, code in _blocks("toml")], ids=lambda c: c.split("\n", 1)[0][:40])
def test_every_toml_block_parses(code: str) -> None:
    tomllib.loads(code)
