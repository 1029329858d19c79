"""The worker's side of settlement: the credit its submitters report, recorded as ``earned`` ledger rows.

A submitter reports a credit in its acknowledgement of a delivery, or, when the ack said the credit
was pending, later in a ``task.settled`` message. A settlement is taken only for a delivery this node
was told is pending, so a peer cannot write arbitrary rows into the ledger.
"""

from __future__ import annotations

import logging
import threading

from gaia_core import codec
from gaia_core.errors import CodecError, NodeError
from gaia_core.jobs.messages import ResultAcks, Settlement
from gaia_core.model import TaskResult
from gaia_core.rewards import Credit, Ledger
from gaia_core.store import Store

log = logging.getLogger("gaia.jobs")

#: Deliveries whose credit this node still waits to hear of, at most (the oldest are forgotten).
MAX_AWAITING = 65536


class Earnings:
    """Credit reported by submitters to this (worker) node."""

    def __init__(self, ledger: Ledger, store: Store) -> None:
        self.ledger = ledger
        self.store = store
        self._awaiting: dict[tuple[str, str], None] = {}  # (submitter, task id) whose credit is pending
        self._lock = threading.Lock()

    def acknowledged(self, submitter: str, results: list[TaskResult], reply: bytes) -> None:
        """Record the credit ``submitter`` acknowledged for ``results``; note those it says are pending."""
        try:
            acks = codec.decode(reply, ResultAcks).acks
        except CodecError as exc:
            log.info("unreadable acknowledgement of results", extra={"submitter": submitter[:16], "error": str(exc)})
            return
        for result, ack in zip(results, acks):
            if ack.task_id != result.task_id:
                continue
            if ack.pending:
                with self._lock:
                    self._awaiting[(submitter, ack.task_id)] = None
                    while len(self._awaiting) > MAX_AWAITING:
                        del self._awaiting[next(iter(self._awaiting))]
            elif ack.credit is not None:
                self._earn(submitter, ack.credit)
        self.store.flush()  # durable now: a kill -9 must not leave the submitter's grant without its row here

    def settled(self, submitter: str, body: bytes) -> bytes:
        """Record credit ``submitter`` decided after acknowledging a delivery (a ``task.settled`` request)."""
        settlement = codec.decode(body, Settlement)
        with self._lock:
            unknown = [c.task_id for c in settlement.credits if (submitter, c.task_id) not in self._awaiting]
        for amount in settlement.credits:
            if amount.task_id not in unknown:
                self._earn(submitter, amount)
        self.store.flush()
        if unknown:  # e.g. the delivery's acks are still on their way: the submitter tries again
            raise NodeError(f"settlement names {len(unknown)} task(s) this node is not waiting on",
                            hint="send it again once the delivery is acknowledged")
        return b""

    def _earn(self, submitter: str, amount: Credit) -> None:
        if amount.verdict in ("valid", "invalid"):
            self.ledger.record(submitter, amount, role="earned")
