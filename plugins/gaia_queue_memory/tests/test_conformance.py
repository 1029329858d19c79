"""The kernel's queue conformance suite, run against MemoryQueue."""

import pytest

from gaia_core.testing.conformance.queue import QueueFactory, QueueTests
from gaia_queue_memory import MemoryQueue


class TestMemoryQueue(QueueTests):
    @pytest.fixture
    def make_queue(self) -> QueueFactory:
        return MemoryQueue
