import pytest

from gaia_core.config import Config
from gaia_core.roles import NodeContext
from gaia_runner_wasm import WasmRunner

pytest_plugins = ["gaia_core.testing.fixtures"]


@pytest.fixture
def runner(node_context: NodeContext):
    """A runner on the isolated home with the default (deny-all) config."""
    runner = WasmRunner(node_context)
    yield runner
    runner.close()


@pytest.fixture
def make_runner(node_context: NodeContext):
    """Build runners with a given Config on the isolated home; closed after the test."""
    made = []

    def make(config: Config | None = None) -> WasmRunner:
        context = NodeContext(config=config or Config(), home=node_context.home, identity=node_context.identity,
                              task_kinds=frozenset({"wasm"}))
        made.append(WasmRunner(context))
        return made[-1]

    yield make
    for runner in made:
        runner.close()
