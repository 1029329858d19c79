"""The installed distribution registers the ``memory`` queue through its entry point."""

from gaia_core import plugins
from gaia_core.roles import NodeContext, Queue
from gaia_queue_memory import MemoryQueue


def test_entry_point_registers_the_memory_queue(node_context: NodeContext) -> None:
    loaded = plugins.load(["gaia-queue-memory"])
    assert loaded.infos["gaia-queue-memory"].status == "active"
    spec = loaded.one("queue")
    assert spec.name == "memory" and spec.factory is MemoryQueue
    queue = spec.factory(node_context)
    assert isinstance(queue, Queue)
    queue.close()
