"""Every rejection reason of gaia_core.admission.REASONS, raised through MemoryQueue.admit."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import pytest

from gaia_core import hookimpl
from gaia_core.admission import REASONS
from gaia_core.config import AdmissionSection, QueueSection
from gaia_core.envelope import seal
from gaia_core.errors import RejectedError
from gaia_core.hashing import content_id
from gaia_core.identity import Identity
from gaia_core.model import Limits, Task
from gaia_core.plugins import Plugins
from gaia_core.roles import NodeContext
from gaia_queue_memory import MemoryQueue

MODULE = b"\0asm\x01\0\0\0"


def task(n: int = 0, **fields: object) -> Task:
    return Task.create(MODULE, input=f"input-{n}".encode(), **fields)


def with_config(context: NodeContext, **sections: object) -> NodeContext:
    return attrs.evolve(context, config=attrs.evolve(context.config, **sections))


class RefuseOdd:
    """A ``gaia_validate_task`` plugin: refuses odd priorities, and crashes on priority 13."""

    @hookimpl
    def gaia_validate_task(self, task: Task, envelope: object, context: NodeContext) -> None:
        if task.priority == 13:
            raise KeyError("bug in a validation plugin")
        if task.priority % 2:
            raise RejectedError("bad_module", "odd priorities are not allowed here", hint="use an even one")


Case = Callable[[NodeContext, Identity], tuple[MemoryQueue, Callable[[MemoryQueue], object]]]


def _too_large_input(ctx: NodeContext, me: Identity):
    q = MemoryQueue(with_config(ctx, admission=AdmissionSection(max_input_bytes=4)))
    return q, lambda q: q.admit(task())


def _too_large_module(ctx: NodeContext, me: Identity):
    q = MemoryQueue(with_config(ctx, admission=AdmissionSection(max_module_bytes=4)))
    return q, lambda q: q.admit(task())


def _too_large_for_queue(ctx: NodeContext, me: Identity):
    q = MemoryQueue(with_config(ctx, queue=QueueSection(capacity_bytes=8)))
    return q, lambda q: q.admit(task())


def _bad_id(ctx: NodeContext, me: Identity):
    return MemoryQueue(ctx), lambda q: q.admit(task(), claimed_id="0" * 64)


def _bad_module(ctx: NodeContext, me: Identity):
    forged = attrs.evolve(task(), module=b"\0asm\x01\0\0\0\0")
    return MemoryQueue(ctx), lambda q: q.admit(forged)


def _forged_envelope(ctx: NodeContext, me: Identity):
    env = seal(me, "task", b"body")
    return MemoryQueue(ctx), lambda q: q.admit(task(), envelope=attrs.evolve(env, body=b"other"))


def _envelope_from_someone_else(ctx: NodeContext, me: Identity):
    env = seal(Identity.generate(), "task", b"body")
    return MemoryQueue(ctx), lambda q: q.admit(task(submitter=me.node_id), envelope=env)


def _replayed_envelope(ctx: NodeContext, me: Identity):
    env = seal(me, "task", b"body")

    def replay(q: MemoryQueue) -> None:
        q.admit(task(1, submitter=me.node_id), envelope=env)
        q.admit(task(2, submitter=me.node_id), envelope=env)  # one envelope may carry a batch
        q.admit(task(1, submitter=me.node_id), envelope=env)  # the same task in it again: a replay
    return MemoryQueue(ctx), replay


def _stale_envelope(ctx: NodeContext, me: Identity):
    env = seal(me, "task", b"body", now=time.time() - 3600)
    return MemoryQueue(ctx), lambda q: q.admit(task(submitter=me.node_id), envelope=env)


def _no_runner(ctx: NodeContext, me: Identity):
    return MemoryQueue(ctx), lambda q: q.admit(task(kind="gpu-kernel"))


def _over_limits(ctx: NodeContext, me: Identity):
    return MemoryQueue(ctx), lambda q: q.admit(task(limits=Limits(capabilities={"net"})))


def _expired(ctx: NodeContext, me: Identity):
    return MemoryQueue(ctx), lambda q: q.admit(task(deadline=time.time() - 1))


def _queue_full_count(ctx: NodeContext, me: Identity):
    def fill(q: MemoryQueue) -> None:
        q.admit(task(1))
        q.admit(task(2))
    return MemoryQueue(with_config(ctx, queue=QueueSection(capacity=1))), fill


def _queue_full_bytes(ctx: NodeContext, me: Identity):
    def fill(q: MemoryQueue) -> None:  # three submitters of 15 bytes each, within their share of 20
        for n, who in enumerate("abc"):
            q.admit(task(n, submitter=who * 64))
    return MemoryQueue(with_config(ctx, queue=QueueSection(capacity_bytes=40))), fill


def _over_submitter_share(ctx: NodeContext, me: Identity):
    def fill(q: MemoryQueue) -> None:
        for n in range(3):
            q.admit(task(n, submitter=me.node_id))
    return MemoryQueue(with_config(ctx, queue=QueueSection(capacity=4))), fill


def _closed(ctx: NodeContext, me: Identity):
    def closed(q: MemoryQueue) -> None:
        q.close()
        q.admit(task())
    return MemoryQueue(ctx), closed


def _not_a_task(ctx: NodeContext, me: Identity):
    return MemoryQueue(ctx), lambda q: q.admit(b"task bytes")  # type: ignore[arg-type]


def _hook_refuses(ctx: NodeContext, me: Identity):
    return MemoryQueue(ctx), lambda q: q.admit(task(priority=3))


def _hook_crashes(ctx: NodeContext, me: Identity):
    return MemoryQueue(ctx), lambda q: q.admit(task(priority=13))


CASES: dict[str, tuple[str, Case]] = {
    "input over [admission] max_input_bytes": ("too_large", _too_large_input),
    "module over [admission] max_module_bytes": ("too_large", _too_large_module),
    "task over [queue] capacity_bytes": ("too_large", _too_large_for_queue),
    "claimed id is not the content id": ("bad_id", _bad_id),
    "module bytes do not match module_id": ("bad_module", _bad_module),
    "a validation hook refuses": ("bad_module", _hook_refuses),
    "forged envelope": ("bad_signature", _forged_envelope),
    "envelope signed by another node": ("bad_signature", _envelope_from_someone_else),
    "replayed envelope": ("bad_signature", _replayed_envelope),
    "stale envelope": ("bad_signature", _stale_envelope),
    "no runner for the kind": ("no_runner", _no_runner),
    "capability not offered": ("over_limits", _over_limits),
    "deadline passed": ("expired", _expired),
    "count capacity": ("queue_full", _queue_full_count),
    "byte capacity": ("queue_full", _queue_full_bytes),
    "one submitter over its share": ("queue_full", _over_submitter_share),
    "queue closed": ("queue_full", _closed),
    "not a Task": ("invalid", _not_a_task),
    "a validation hook crashes": ("invalid", _hook_crashes),
}


@pytest.fixture
def hooked_context(node_context: NodeContext, plugin_manager: Plugins) -> NodeContext:
    plugin_manager.register(RefuseOdd(), name="refuse-odd")
    return attrs.evolve(node_context, hook=plugin_manager.hook)


@pytest.mark.parametrize("case", CASES)
def test_rejection(case: str, hooked_context: NodeContext, identity: Identity) -> None:
    reason, build = CASES[case]
    queue, offend = build(hooked_context, identity)
    depth = queue.stats().depth
    with pytest.raises(RejectedError) as info:
        offend(queue)
    assert info.value.reason == reason
    assert info.value.message
    stats = queue.stats()
    assert stats.rejected == {reason: 1}
    assert stats.depth <= depth + 2 and stats.admitted == stats.depth
    queue.close()


def test_every_reason_has_a_case() -> None:
    assert {reason for reason, _ in CASES.values()} == set(REASONS)


def test_queue_full_carries_a_retry_hint(node_context: NodeContext) -> None:
    queue = MemoryQueue(with_config(node_context, queue=QueueSection(capacity=1)))
    queue.admit(task(1))
    with pytest.raises(RejectedError) as info:
        queue.admit(task(2))
    assert 0 < info.value.retry_after <= 60
    queue.next(timeout=0)
    queue.admit(task(2))


def test_signed_task_from_its_submitter_is_admitted(node_context: NodeContext, identity: Identity) -> None:
    queue = MemoryQueue(node_context)
    mine = task(submitter=identity.node_id)
    env = seal(identity, "task", b"body")
    assert queue.admit(mine, envelope=env, claimed_id=mine.id) == mine.id
    assert queue.next(timeout=0) == mine


def test_module_by_id_only_is_admitted(node_context: NodeContext) -> None:
    queue = MemoryQueue(node_context)
    by_id = Task(module_id=content_id(MODULE), input=b"x")
    assert queue.admit(by_id) == by_id.id


def test_one_submitter_cannot_fill_the_replay_cache_for_the_others(node_context: NodeContext,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each offered task takes a replay entry, kept or not: a flood of one submitter's offers filled the cache,
    and every other submitter's offers were refused as replays (``bad_signature``) until it emptied."""
    from gaia_queue_memory import queue as queue_mod

    monkeypatch.setattr(queue_mod, "REPLAY_ENTRIES", 40)  # half of it (the default submitter_share) each
    q = MemoryQueue(node_context)
    flooder, other = Identity.generate(), Identity.generate()
    env = seal(flooder, "task", b"flood")
    refused = []
    for n in range(60):
        try:
            q.admit(task(n, submitter=flooder.node_id), envelope=env)
        except RejectedError as exc:
            refused.append(exc.reason)
    assert "bad_signature" in refused  # past its share: only the flooder is refused
    q.admit(task(999, submitter=other.node_id), envelope=seal(other, "task", b"one"))
