"""Hook implementations: registers the ``memory`` queue."""

from __future__ import annotations

from collections.abc import Iterator

from gaia_core.plugin_api import QueueSpec, hookimpl
from gaia_queue_memory.queue import MemoryQueue


@hookimpl
def gaia_queues() -> Iterator[QueueSpec]:
    """The in-memory queue: admission checks, priority/EDF/fair-share order, count and byte bounds."""
    yield QueueSpec(name="memory", factory=MemoryQueue)
