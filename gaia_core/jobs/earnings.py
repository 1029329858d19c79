"""The worker's side of settlement: the credit its submitters report, recorded as ``earned`` ledger rows.

A submitter reports a credit in its acknowledgement of a delivery, or, when the ack said the credit
was pending, later in a ``task.settled`` message. A settlement is taken only for a delivery this node
was told is pending (or already settled), so a peer cannot write arbitrary rows into the ledger. The
pending deliveries are ``awaiting`` rows of the ledger, durable like the rest: a worker restarted
before its submitter decided still takes the credit when the settlement comes.
"""

from __future__ import annotations

import logging
import time

from gaia_core import codec
from gaia_core.errors import CodecError, NodeError
from gaia_core.jobs.messages import ResultAcks, Settlement
from gaia_core.model import TaskResult, VerdictStatus
from gaia_core.rewards import Credit, Ledger
from gaia_core.store import Store

log = logging.getLogger("gaia.jobs")

#: The ledger role of a delivery whose credit the submitter has not decided yet (zero until settled).
AWAITING = "awaiting"
#: Seconds after which an awaiting row is forgotten (submitters stop re-sending a settlement long before),
#: and seconds between two such clean-ups.
AWAIT_S, PRUNE_EVERY_S = 3600.0, 60.0


class Earnings:
    """Credit reported by submitters to this (worker) node."""

    def __init__(self, ledger: Ledger, store: Store) -> None:
        self.ledger = ledger
        self.store = store
        self._next_prune = 0.0

    def delivering(self, submitter: str, results: list[TaskResult]) -> None:
        """Before ``results`` are sent: note each as awaiting its credit, on disk, so that a worker killed
        while the submitter grants it still takes the settlement after its restart."""
        for result in results:
            self.ledger.record(submitter, Credit(result.task_id, VerdictStatus.UNVERIFIED, 0.0), role=AWAITING)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_S
            self.store.defer("DELETE FROM ledger WHERE role = ? AND at < ?", (AWAITING, time.time() - AWAIT_S))
        self.store.flush()

    def acknowledged(self, submitter: str, results: list[TaskResult], reply: bytes) -> None:
        """Record the credit ``submitter`` acknowledged for ``results``; note those it says are pending."""
        try:
            acks = codec.decode(reply, ResultAcks).acks
        except CodecError as exc:
            log.info("unreadable acknowledgement of results", extra={"submitter": submitter[:16], "error": str(exc)})
            return
        # a peer's reply may hold fewer acks (or more) than results sent: each pair is checked by task id
        for result, ack in zip(results, acks, strict=False):
            if ack.task_id != result.task_id:
                continue
            # An ack without credit leaves the awaiting row: an earlier delivery of the same task may
            # still be pending (a copy re-sent after the submitter restarted is answered "already settled").
            if ack.credit is not None and ack.credit.task_id == result.task_id:  # of this delivery, no other task
                self._earn(submitter, ack.credit)
                self._settled(submitter, ack.task_id)
        self.store.flush()  # durable now: a kill -9 must not leave the submitter's grant without its row here

    def settled(self, submitter: str, body: bytes) -> bytes:
        """Record credit ``submitter`` decided after acknowledging a delivery (a ``task.settled`` request)."""
        settlement = codec.decode(body, Settlement)
        unknown = []
        for amount in settlement.credits:
            if not self.store.execute("SELECT 1 FROM ledger WHERE node_id = ? AND task_id = ? "
                                      "AND role IN (?, 'earned')", (submitter, amount.task_id, AWAITING)):
                unknown.append(amount.task_id)
                continue
            self._earn(submitter, amount)
            self._settled(submitter, amount.task_id)
        self.store.flush()
        if unknown:  # e.g. the delivery's acks are still on their way: the submitter tries again
            raise NodeError(f"settlement names {len(unknown)} task(s) this node is not waiting on",
                            hint="send it again once the delivery is acknowledged")
        return b""

    def _settled(self, submitter: str, task_id: str) -> None:
        self.store.defer("DELETE FROM ledger WHERE node_id = ? AND task_id = ? AND role = ?",
                         (submitter, task_id, AWAITING))

    def _earn(self, submitter: str, amount: Credit) -> None:
        if amount.verdict in (VerdictStatus.VALID, VerdictStatus.INVALID):
            self.ledger.record(submitter, amount, role="earned")
