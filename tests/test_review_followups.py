"""Defects a review of the job code found at its joins, each pinned by a test."""

from __future__ import annotations

import concurrent.futures
import logging

import pytest

from gaia_core import codec
from gaia_core.errors import NodeError, ValidationError
from gaia_core.jobs.dispatcher import MIN_DEPTH, UNPROVEN_CORES, Candidate
from gaia_core.jobs.manager import JobManager, _offer_answers
from gaia_core.jobs.messages import OfferAnswer, OfferReply
from gaia_core.model import MAX_CORES, NodeRecord
from tests.test_dispatch import A, Harness

T1, T2 = "1" * 64, "2" * 64


def test_an_offer_answer_that_names_another_task_is_a_malformed_reply() -> None:
    reply = codec.encode(OfferReply((OfferAnswer(T1, True), OfferAnswer(T1, True))))
    with pytest.raises(NodeError, match="names another task"):
        _offer_answers(reply, [T1, T2])
    undecodable = codec.encode(OfferReply((OfferAnswer(T1, True), OfferAnswer("", False, "invalid"))))
    assert [a.accepted for a in _offer_answers(undecodable, [T1, T2])] == [True, False]


def test_what_background_job_work_raises_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise RuntimeError("settlement exploded")

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool, caplog.at_level(logging.ERROR, "gaia.jobs"):
        assert JobManager._background(pool, boom)
    assert any("background job work failed" in r.message and r.exc_info for r in caplog.records)


def test_a_record_cannot_announce_more_cores_than_a_node_may_offer() -> None:
    with pytest.raises(ValidationError):
        NodeRecord(node_id=A, cores=MAX_CORES + 1)


def test_an_unproven_peer_gets_a_window_of_a_few_cores_whatever_it_claims() -> None:
    h = Harness()
    h.job(10_000)
    h.sent.clear()
    h.dispatcher.dispatch({A: Candidate(A, MAX_CORES, frozenset({"wasm"}), 0.0, 1.0)})
    offered = sum(len(slots) for _, slots in h.sent)
    assert offered == MIN_DEPTH * UNPROVEN_CORES
