"""Peers are ranked by the benchmark role's score (and observed speed), never by one plugin's own figure."""

from __future__ import annotations

from types import SimpleNamespace

from gaia_core.jobs.dispatcher import Dispatcher
from gaia_core.jobs.manager import JobManager
from gaia_core.model import SCORE, NodeRecord
from gaia_core.roles import PeerInfo

A, B, C, ME = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def _candidates(*records: NodeRecord) -> dict:
    """What the job manager hands its dispatcher for these peers, all up (this node runs no tasks)."""
    node = SimpleNamespace(
        node_id=ME, runners={}, record=None, peer_records={r.node_id: r for r in records},
        transport=SimpleNamespace(peers=lambda: [PeerInfo(r.node_id, "addr", state="up") for r in records]))
    return JobManager._candidates(SimpleNamespace(node=node))  # type: ignore[arg-type]


def test_the_prior_is_the_announced_score_not_the_psutil_gflops() -> None:
    fast = NodeRecord(node_id=A, task_kinds=("wasm",), benchmark={SCORE: 4.0, "cpu.gflops_all": 1.0})
    slow = NodeRecord(node_id=B, task_kinds=("wasm",), benchmark={SCORE: 0.5, "cpu.gflops_all": 90.0})
    other = NodeRecord(node_id=C, task_kinds=("wasm",), benchmark={"gpu.tflops": 80.0})  # another plugin, no score
    candidates = _candidates(fast, slow, other)
    assert {p: c.prior for p, c in candidates.items()} == {A: 4.0, B: 0.5, C: 1.0}
    scores = Dispatcher(send=lambda *_: None, fail=lambda *_: None, clock=lambda: 0.0).scores(candidates)
    assert scores[A] > scores[C] > scores[B]
