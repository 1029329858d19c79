"""The worker's side of settlement: the credit its submitters report, recorded as ``earned`` ledger rows.

A submitter reports a credit in its acknowledgement of a delivery, or, when the ack said the credit
was pending, later in a ``task.settled`` message. A settlement is taken only for a delivery this node
was told is pending (or already settled), so a peer cannot write arbitrary rows into the ledger. The
pending deliveries are ``awaiting`` rows of the ledger, durable like the rest: a worker restarted
before its submitter decided still takes the credit when the settlement comes.

A submitter tries a settlement for 5 minutes only (:mod:`gaia_core.jobs.unsettled`). A worker away
longer asks for it instead: once it reaches that submitter again (a delivery, or the submitter seen
up), it names its deliveries still awaiting credit after :data:`ASK_AFTER_S` in a ``task.credits``
query, and records what the submitter's ledger granted, so both ledgers hold the same row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from gaia_core import codec
from gaia_core.errors import CodecError, NodeError
from gaia_core.jobs.messages import MAX_QUERY, CreditQuery, ResultAcks, Settlement
from gaia_core.model import TaskResult, VerdictStatus
from gaia_core.rewards import Credit, Ledger
from gaia_core.store import Store

log = logging.getLogger("gaia.jobs")

#: The ledger role of a delivery whose credit the submitter has not decided yet (zero until settled).
AWAITING = "awaiting"
#: Seconds after which an awaiting row is forgotten (submitters stop re-sending a settlement long before),
#: and seconds between two such clean-ups.
AWAIT_S, PRUNE_EVERY_S = 3600.0, 60.0
#: Seconds after which an awaiting delivery's credit is asked for (the submitter stops sending it after
#: 300 s), and seconds between two queries to one submitter.
ASK_AFTER_S, ASK_EVERY_S = 300.0, 60.0


class Earnings:
    """Credit reported by submitters to this (worker) node."""

    def __init__(self, ledger: Ledger, store: Store) -> None:
        self.ledger = ledger
        self.store = store
        self._next_prune = 0.0
        self._asked: dict[str, float] = {}  # submitter -> when this node last asked it for credits

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
        unknown = self._take(submitter, codec.decode(body, Settlement).credits)
        if unknown:  # e.g. the delivery's acks are still on their way: the submitter tries again
            raise NodeError(f"settlement names {len(unknown)} task(s) this node is not waiting on",
                            hint="send it again once the delivery is acknowledged")
        return b""

    def query(self, submitter: str) -> CreditQuery | None:
        """The deliveries to ask ``submitter`` the credit of (awaiting for over :data:`ASK_AFTER_S`), or None
        when there are none or it was asked less than :data:`ASK_EVERY_S` ago."""
        now = time.time()
        if now - self._asked.get(submitter, 0.0) < ASK_EVERY_S:
            return None
        rows = self.store.execute("SELECT task_id FROM ledger WHERE node_id = ? AND role = ? AND at < ? "
                                  "ORDER BY at LIMIT ?", (submitter, AWAITING, now - ASK_AFTER_S, MAX_QUERY))
        if not rows:
            return None
        if len(self._asked) >= 4096:  # bounded: forget submitters asked long enough ago to be asked again
            self._asked = {s: t for s, t in self._asked.items() if now - t < ASK_EVERY_S}
        self._asked[submitter] = now
        return CreditQuery(task_id for (task_id,) in rows)

    def answered(self, submitter: str, query: CreditQuery, reply: bytes) -> int:
        """Record the credits ``submitter`` answered to ``query`` (only of the tasks asked); how many."""
        asked = set(query.task_ids)
        credits = [c for c in codec.decode(reply, Settlement).credits if c.task_id in asked]
        return len(credits) - len(self._take(submitter, credits))

    def _take(self, submitter: str, credits: Iterable[Credit]) -> list[str]:
        """Record ``credits`` of deliveries awaiting (or already given) them; the task ids of the others."""
        unknown = []
        for amount in credits:
            if not self.store.execute("SELECT 1 FROM ledger WHERE node_id = ? AND task_id = ? "
                                      "AND role IN (?, 'earned')", (submitter, amount.task_id, AWAITING)):
                unknown.append(amount.task_id)
                continue
            self._earn(submitter, amount)
            self._settled(submitter, amount.task_id)
        self.store.flush()
        return unknown

    def _settled(self, submitter: str, task_id: str) -> None:
        self.store.defer("DELETE FROM ledger WHERE node_id = ? AND task_id = ? AND role = ?",
                         (submitter, task_id, AWAITING))

    def _earn(self, submitter: str, amount: Credit) -> None:
        if amount.verdict in (VerdictStatus.VALID, VerdictStatus.INVALID):
            self.ledger.record(submitter, amount, role="earned")
