"""gaia-queue-memory: the node's bounded, fair, in-memory task queue (the ``memory`` queue provider)."""

from gaia_queue_memory.queue import MemoryQueue

__version__ = "0.1.0"

__all__ = ["MemoryQueue", "__version__"]
