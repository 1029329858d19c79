"""Shared fixtures of the kernel's tests.

``fake_dists`` installs fake plugin distributions the way conda's tests do: a
directory holding ``<name>-<version>.dist-info/{METADATA,entry_points.txt}``
and the plugin module, put on ``sys.path``. Nothing is pip-installed.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaia_core.jobs.jobstore import JobStore
from gaia_core.store import Store

pytest_plugins = ["gaia_core.testing.fixtures"]


class FakeDists:
    """Writes fake installed plugin distributions into one directory on ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def add(self, name: str, source: str, *, version: str = "0.1.0") -> str:
        """Install distribution ``name`` whose ``gaia`` entry point is a module holding ``source``.

        Returns the module name (derived from ``name``, unique per test directory).
        """
        module = name.replace("-", "_") + "_plugin"
        (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(f"[gaia]\n{name} = {module}\n", encoding="utf-8")
        self.modules.append(module)
        importlib.invalidate_caches()
        return module


@pytest.fixture
def fake_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    """A factory for fake plugin distributions, visible to ``importlib.metadata`` for this test."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    dists = FakeDists(root)
    yield dists
    for module in dists.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


@pytest.fixture
def jobstore(tmp_path: Path) -> Iterator[JobStore]:
    """A job store on a fresh state database in the test's directory; closed afterwards."""
    store = Store(tmp_path / "state.db")
    try:
        yield JobStore(store)
    finally:
        store.close()


#: Source of a well-behaved plugin registering one provider per role except transport and queue.
GOOD_PLUGIN = """
    from gaia_core import hookimpl
    from gaia_core.roles import BenchmarkSpec, ProverSpec, RunnerSpec


    class EchoRunner:
        def __init__(self, context):
            self.context = context


    @hookimpl
    def gaia_runners():
        yield RunnerSpec(name="echo", task_kinds=("echo",), factory=EchoRunner)


    @hookimpl
    def gaia_benchmarks():
        return [BenchmarkSpec(name="null", factory=EchoRunner)]


    @hookimpl
    def gaia_provers():
        yield ProverSpec(scheme="none", factory=EchoRunner, simulated=True)
"""


@pytest.fixture
def good_plugin() -> str:
    """Source of a plugin that loads cleanly (see :data:`GOOD_PLUGIN`)."""
    return GOOD_PLUGIN
