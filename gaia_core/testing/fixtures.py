"""Pytest fixtures for GAIA and plugin test suites (opt-in pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gaia_core import plugins
from gaia_core.config import Config, Home
from gaia_core.identity import Identity
from gaia_core.roles import NodeContext


@pytest.fixture
def gaia_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """An empty, isolated node home; ``$GAIA_HOME`` points at it."""
    root = tmp_path / "gaia-home"
    root.mkdir()
    monkeypatch.setenv("GAIA_HOME", str(root))
    monkeypatch.delenv("GAIA_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("GAIA_STRICT_PLUGINS", raising=False)
    return Home(root)


@pytest.fixture
def identity() -> Identity:
    """A fresh node identity (not written to disk)."""
    return Identity.generate()


@pytest.fixture
def node_context(gaia_home: Home, identity: Identity) -> NodeContext:
    """A context with default config, the isolated home and a fresh identity."""
    return NodeContext(config=Config(), home=gaia_home, identity=identity, task_kinds=frozenset({"wasm"}))


@pytest.fixture
def plugin_manager() -> Iterator[plugins.Plugins]:
    """A fresh plugin registry with GAIA's hook specs and no plugins loaded."""
    yield plugins.Plugins(plugins.new_manager(), {})


@pytest.fixture
def cli_runner(gaia_home: Home) -> CliRunner:
    """A click runner for ``gaia`` commands, inside the isolated home."""
    return CliRunner()
