"""Producers and consumers on several threads: every admitted task runs once and is counted once."""

from __future__ import annotations

import threading
import time

import attrs

from gaia_core.config import QueueSection
from gaia_core.errors import RejectedError
from gaia_core.model import Status
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.queue import make_task
from gaia_queue_memory import MemoryQueue

PRODUCERS, CONSUMERS, PER_PRODUCER = 3, 4, 400


def test_producers_and_consumers_lose_nothing(node_context: NodeContext) -> None:
    config = attrs.evolve(node_context.config, queue=QueueSection(capacity=64))
    queue = MemoryQueue(attrs.evolve(node_context, config=config))
    admitted: list[list[str]] = [[] for _ in range(PRODUCERS)]
    ran: list[list[str]] = [[] for _ in range(CONSUMERS)]
    producing = threading.Event()
    producing.set()

    def produce(p: int) -> None:
        for i in range(PER_PRODUCER):
            task = make_task(p * PER_PRODUCER + i, submitter=f"{p:064x}", priority=i % 3)
            for _attempt in range(2000):  # bounded retries on queue_full
                try:
                    admitted[p].append(queue.admit(task))
                    break
                except RejectedError as exc:
                    assert exc.reason == "queue_full" and exc.retry_after
                    time.sleep(0.001)

    def consume(c: int) -> None:
        for _ in range(PRODUCERS * PER_PRODUCER + 100):  # bounded
            task = queue.next(timeout=0.5)
            if task is None:
                if not producing.is_set():
                    return
                continue
            ran[c].append(task.id)
            assert queue.done(task.id, Status.OK)

    producers = [threading.Thread(target=produce, args=(p,)) for p in range(PRODUCERS)]
    consumers = [threading.Thread(target=consume, args=(c,)) for c in range(CONSUMERS)]
    for thread in producers + consumers:
        thread.start()
    for thread in producers:
        thread.join(60)
    producing.clear()
    for thread in consumers:
        thread.join(60)
    assert not any(t.is_alive() for t in producers + consumers)

    everything = [i for ids in admitted for i in ids]
    done = [i for ids in ran for i in ids]
    assert len(everything) == PRODUCERS * PER_PRODUCER
    assert sorted(done) == sorted(everything)
    stats = queue.stats()
    assert stats.depth == 0 and stats.admitted == len(everything)
    assert stats.finished == {"ok": len(everything)}
    assert abs(sum(stats.share.values()) - 1.0) < 1e-9
    queue.close()
