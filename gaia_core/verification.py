"""Verification that is real today: redundancy quorums, spot-checks and adaptive trust.

A proof (see :class:`gaia_core.roles.Prover`) says who claims to have run what; these
policies check the claim by running the work again, because deterministic WASM makes
equal output ids an exact test.

* **Redundancy** (BOINC's validator rule): the same task runs on ``k`` nodes; a canonical
  output needs ``k // 2 + 1`` matching output ids. Nodes that returned anything else are
  flagged. Work that is not bit-deterministic (float inference in containers) is compared
  with a :class:`Tolerance` instead: outputs that agree within it count as one.
* **Spot-check**: a fraction of tasks is re-executed locally and the output ids and fuel compared.
  The choice is a keyed hash of the task id, so a peer cannot tell which of its tasks will
  be checked, yet asking twice about one task gives one answer.
* **Adaptive trust** (BOINC adaptive replication, ``sched/sched_send.cpp``): a peer becomes
  trusted after ``threshold`` consecutive valid results; a trusted peer with a streak of
  ``n`` is checked with probability ``min(rate, max(floor, 1 / n))``; one invalid result
  resets the streak to zero.

Every verdict feeds the reward ledger: only ``valid`` work earns credit (:func:`combine`).
All classes here are thread-safe.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
from attrs import field, frozen, validators as v

from gaia_core.errors import ValidationError
from gaia_core.model import Status, TaskResult, Verdict, VerdictStatus

#: Consecutive valid results after which BOINC trusts a host (``CONS_VALID_UNREPLICATED``).
TRUST_THRESHOLD = 10


@frozen
class Quorum:
    """The outcome of comparing the output ids that ``k`` nodes returned for one task."""

    canonical: str | None
    """The output id a quorum agreed on, or None when none did (yet)."""
    needed: int
    agreeing: tuple[str, ...] = ()
    disagreeing: tuple[str, ...] = ()
    """Nodes whose result differs from the canonical one (empty when there is none)."""

    def verdict(self, node_id: str, task_id: str = "") -> Verdict:
        """The verdict for one node's result: valid if it agrees, invalid if it differs, else unverified."""
        if node_id in self.agreeing:
            return Verdict(VerdictStatus.VALID, f"agrees with {len(self.agreeing)} of the quorum of {self.needed}",
                           task_id, "redundancy")
        if node_id in self.disagreeing:
            return Verdict(VerdictStatus.INVALID, f"output differs from the canonical output {self.canonical}",
                           task_id, "redundancy")
        return Verdict(VerdictStatus.UNVERIFIED, f"no quorum: {self.needed} matching results needed", task_id,
                       "redundancy")


def quorum(votes: Mapping[str, str], k: int | None = None) -> Quorum:
    """Find the canonical output among ``votes`` (node id → output id; ``""`` for a failed run).

    ``k`` is the number of replicas sent (default: the number of votes); results still
    missing count against the quorum, so a canonical output needs ``k // 2 + 1`` matches
    among those returned.
    """
    replicas = len(votes) if k is None else k
    if replicas < 1 or replicas < len(votes):
        raise ValidationError(f"quorum of k={replicas} cannot hold {len(votes)} results",
                         hint="pass k as the number of nodes the task was sent to")
    needed = replicas // 2 + 1
    counts = Counter(output for output in votes.values() if output)
    if counts:
        best, n = counts.most_common(1)[0]
        if n >= needed:
            agreeing = tuple(sorted(node for node, output in votes.items() if output == best))
            disagreeing = tuple(sorted(node for node, output in votes.items() if output != best))
            return Quorum(best, needed, agreeing, disagreeing)
    return Quorum(None, needed)


def vote(result: TaskResult) -> str:
    """What a result votes for: its output id, or its status when it failed deterministically.

    Deterministic failures (trap, out of fuel, ...) agree across honest nodes as outputs do;
    failures that depend on the node (timeout, error, ...) vote for nothing.
    """
    if result.ok:
        return result.output_id
    if result.status in (Status.TIMEOUT, Status.ERROR, Status.CANCELLED, Status.EXPIRED, Status.REJECTED):
        return ""
    return f"status:{result.status.value}"


#: What :meth:`Tolerance.numbers` reads from an output: a digest of the pieces of text around its numbers
#: (``b""`` for arrays), and the numbers.
Numbers = tuple[bytes, np.ndarray]
#: How a job's float outputs are read for a :class:`Tolerance` (``--floats``).
FLOAT_FORMATS = ("f32", "f64", "text")
#: The largest relative tolerance: at rtol=1 a zero agreed with every number (|0 - x| <= rtol * |x|), and
#: rtol near 1 with any number of its sign; 10% is far beyond any float nondeterminism.
MAX_RTOL = 0.1
#: A decimal number in a text output (sign, digits, point, exponent).
_NUMBER = re.compile(rb"([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)")
#: A byte that is no part of a number: text outputs are read in blocks cut after one.
_OUTSIDE = re.compile(rb"[^-+.0-9eE]")
#: Bytes of a text output read at a time (its pieces of text are held a block at a time).
_BLOCK = 1 << 20


@frozen
class Tolerance:
    """A verification option for float outputs (containers are not bit-deterministic): two outputs agree
    when they hold as many numbers and each pair is within ``atol + rtol * max(|a|, |b|)``; NaN and
    infinity never agree.

    ``floats`` says how an output holds its numbers: ``f32`` or ``f64``, a little-endian array of
    that type (as numpy's ``tobytes()`` writes it on x86 and ARM); ``text``, decimal numbers in
    text (JSON, CSV, ``print``): the text between the numbers must be the same byte for byte.
    """

    rtol: float = field(default=1e-5, converter=float, validator=[v.ge(0.0), v.le(MAX_RTOL)])
    atol: float = field(default=1e-6, converter=float, validator=[v.ge(0.0), v.le(1e6)])
    floats: str = field(default="f32", validator=v.in_(FLOAT_FORMATS))

    @classmethod
    def parse(cls, spec: str, floats: str = "f32") -> Tolerance:
        """A tolerance from ``RTOL`` or ``RTOL,ATOL`` (``--tolerance``; ATOL defaults to RTOL);
        ValidationError saying what is wrong."""
        parts = spec.split(",")
        try:
            if len(parts) > 2:
                raise ValueError("more than two numbers")
            numbers = [float(part) for part in parts]
            if not all(np.isfinite(numbers)):
                raise ValueError("not a finite number")
            return cls(numbers[0], numbers[-1], floats)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"tolerance {spec!r} is not RTOL or RTOL,ATOL ({exc})",
                                  hint="e.g. --tolerance 1e-5 (relative and absolute) or 1e-4,1e-6; "
                                  f"RTOL at most {MAX_RTOL:g}, ATOL at most 1e6") from None

    @classmethod
    def of(cls, table: Mapping[str, object] | None) -> Tolerance | None:
        """The tolerance a job's stored or submitted options describe (``{"rtol", "atol", "floats"}``),
        or None for byte comparison; ValidationError when they are not one."""
        if table is None:
            return None
        try:
            return cls(**table)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"not a tolerance: {exc}",
                                  hint=f"give rtol and atol (0 to {MAX_RTOL:g}, 0 to 1e6) and floats (f32, f64 "
                                  "or text)") from None

    def numbers(self, output: bytes) -> Numbers | None:
        """What an output is compared by: a digest of the pieces of text between its numbers (``b""`` for
        arrays) and its numbers as float64; None when it holds none in this format (an array of a partial
        element) or one that is NaN or infinite. Memory stays at 8 bytes a number, however many."""
        if self.floats == "text":
            frame = hashlib.sha256()
            values = np.fromiter(_text_numbers(output, frame), np.float64)
            framed = frame.digest()
        else:
            width = 4 if self.floats == "f32" else 8
            if len(output) % width:
                return None
            framed, values = b"", np.frombuffer(output, f"<f{width}").astype(np.float64)
        return (framed, values) if np.isfinite(values).all() else None

    def close(self, a: Numbers | None, b: Numbers | None) -> bool:
        """True when two outputs' :meth:`numbers` agree: the same text around as many numbers, each pair
        within the tolerance."""
        if a is None or b is None or a[0] != b[0] or a[1].shape != b[1].shape:
            return False
        x, y = a[1], b[1]
        with np.errstate(over="ignore"):  # 1e308 - -1e308 is inf: outside any tolerance, not a warning
            return bool((np.abs(x - y) <= self.atol + self.rtol * np.maximum(np.abs(x), np.abs(y))).all())

    def agree(self, a: bytes, b: bytes) -> bool:
        """True when outputs ``a`` and ``b`` hold the same numbers within this tolerance."""
        return self.close(self.numbers(a), self.numbers(b))

    def votes(self, results: Iterable[TaskResult]) -> dict[str, str]:
        """Each ok result votes for the output id of a representative it agrees with: the output that agrees
        with the most others comes first (ties in output id order), then the most agreed-with among those
        left, and so on. Agreement within a tolerance is not transitive: were the first in output id order
        chosen, a replica could sit just inside the tolerance on one side of an honest output and have
        another honest output, just outside it on the other side, outvoted. Each output is read once."""
        ok = sorted((r for r in results if r.ok), key=lambda r: r.output_id)
        read = [self.numbers(r.output) for r in ok]
        agree = [{j for j, b in enumerate(ok) if a.output_id == b.output_id or self.close(read[i], read[j])}
                 for i, a in enumerate(ok)]
        left = set(range(len(ok)))
        votes: dict[str, str] = {}
        while left:
            best = max(sorted(left), key=lambda i: len(agree[i] & left))  # max keeps the first of a tie
            for i in agree[best] & left:
                votes[ok[i].node_id] = ok[best].output_id
            left -= agree[best]
        return votes


def _text_numbers(output: bytes, frame: hashlib._Hash) -> Iterator[float]:
    """The decimal numbers in ``output``, in order; each piece of text before, between and after them goes
    into ``frame`` with its length (so a byte moved across a number changes it). Read a block at a time, cut
    after a byte no number holds, so that no number spans a cut; where no such byte follows within a block
    (``1e1e1e...``), the rest is read one number at a time."""
    piece, start = b"", 0
    while start < len(output):
        cut = _OUTSIDE.search(output, min(start + _BLOCK, len(output)) - 1, start + 2 * _BLOCK)
        if cut is None and start + 2 * _BLOCK < len(output):
            for match in _NUMBER.finditer(output, start):
                piece += output[start:match.start()]
                frame.update(b"%d:%s" % (len(piece), piece))
                piece, start = b"", match.end()
                yield float(match[0])
            piece += output[start:]
            break
        end = cut.end() if cut is not None else len(output)
        parts = _NUMBER.split(output[start:end])
        parts[0] = piece + parts[0]
        for text in parts[:-1:2]:
            frame.update(b"%d:%s" % (len(text), text))
        yield from map(float, parts[1::2])
        piece, start = parts[-1], end
    frame.update(b"%d:%s" % (len(piece), piece))


def quorum_of(results: Iterable[TaskResult], k: int | None = None, tolerance: Tolerance | None = None) -> Quorum:
    """:func:`quorum` over results, each voting with :func:`vote`, or for an output it agrees with
    within ``tolerance`` when one is given."""
    results = list(results)
    votes = {r.node_id: vote(r) for r in results}
    if tolerance is not None:
        votes.update(tolerance.votes(results))
    return quorum(votes, k)


def compare(remote: TaskResult, local: TaskResult, tolerance: Tolerance | None = None) -> Verdict:
    """Judge a peer's result against a local re-execution of the same task.

    Deterministic runs must agree on status, output id (or, with a ``tolerance``, outputs within
    it) and fuel used (a claimed fuel that the re-execution does not reproduce exactly is an
    inflated claim). A local run that failed for a reason outside the task (timeout, error,
    cancellation) proves nothing: ``unverified``.
    """
    if remote.task_id != local.task_id:
        return Verdict(VerdictStatus.UNVERIFIED, "the local run is of another task", remote.task_id, "spot-check")
    if local.status in (Status.TIMEOUT, Status.ERROR, Status.CANCELLED, Status.EXPIRED, Status.REJECTED):
        return Verdict(VerdictStatus.UNVERIFIED, f"local re-execution ended {local.status.value}", remote.task_id,
                       "spot-check")
    if remote.status is not local.status:
        return Verdict(VerdictStatus.INVALID,
                       f"status {remote.status.value} but local re-execution ended {local.status.value}",
                       remote.task_id, "spot-check")
    if tolerance is not None and remote.ok:
        if remote.output_id != local.output_id and not tolerance.agree(remote.output, local.output):
            return Verdict(VerdictStatus.INVALID, f"output {remote.output_id} is not within rtol={tolerance.rtol:g}, "
                           f"atol={tolerance.atol:g} of the local re-execution's", remote.task_id, "spot-check")
    elif not hmac.compare_digest(remote.output_id, local.output_id):
        return Verdict(VerdictStatus.INVALID, f"output id {remote.output_id or '(none)'} but local re-execution gave "
                       f"{local.output_id or '(none)'}", remote.task_id, "spot-check")
    if remote.fuel_used != local.fuel_used:
        return Verdict(VerdictStatus.INVALID,
                       f"claimed fuel {remote.fuel_used} but local re-execution used {local.fuel_used}",
                       remote.task_id, "spot-check")
    return Verdict(VerdictStatus.VALID, "matches local re-execution", remote.task_id, "spot-check")


def agreed_fuel(results: Iterable[TaskResult]) -> tuple[int | None, tuple[str, ...]]:
    """The fuel a strict majority of replicas with one output reproduced, and the nodes that claimed other fuel.

    Replicas that agree on the output ran the same deterministic work, so honest ones report the
    same fuel. With no strict majority (two replicas, two claims) nobody can be blamed: ``None``,
    and the caller credits the smallest claim.
    """
    claims = {r.node_id: r.fuel_used for r in results}
    if not claims:
        return None, ()
    fuel, count = Counter(claims.values()).most_common(1)[0]
    if 2 * count <= len(claims) or count < 2:
        return None, ()
    return fuel, tuple(sorted(node for node, claim in claims.items() if claim != fuel))


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """One verdict for a result judged several ways: any invalid wins, then any unverified.

    This is what the reward ledger reads: only a ``valid`` combined verdict earns credit.
    No verdicts at all is ``unverified``.
    """
    seen = list(verdicts)
    for status in (VerdictStatus.INVALID, VerdictStatus.UNVERIFIED):
        hit = next((x for x in seen if x.status is status), None)
        if hit is not None:
            return hit
    if not seen:
        return Verdict(VerdictStatus.UNVERIFIED, "nothing checked this result")
    return Verdict(VerdictStatus.VALID, "; ".join(f"{x.scheme or 'check'}: {x.reason}" for x in seen),
                   seen[0].task_id, "+".join(x.scheme for x in seen if x.scheme))


class Trust:
    """Per-peer streaks of consecutive valid results (BOINC's ``consecutive_valid``)."""

    def __init__(self, threshold: int = TRUST_THRESHOLD) -> None:
        if threshold < 1:
            raise ValidationError(f"trust threshold must be at least 1, got {threshold}")
        self.threshold = threshold
        self._streaks: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, peer: str, verdict: Verdict) -> int:
        """Count a verdict on ``peer``'s work: valid extends the streak, invalid resets it; returns it."""
        with self._lock:
            streak = self._streaks.get(peer, 0)
            if verdict.status is VerdictStatus.VALID:
                streak += 1
            elif verdict.status is VerdictStatus.INVALID:
                streak = 0
            self._streaks[peer] = streak
            return streak

    def streak(self, peer: str) -> int:
        """Consecutive valid results of ``peer`` (0 for a stranger)."""
        with self._lock:
            return self._streaks.get(peer, 0)

    def forget(self, peer: str) -> None:
        """Drop ``peer``'s streak (it is a stranger again: checked at the full rate)."""
        with self._lock:
            self._streaks.pop(peer, None)

    def trusted(self, peer: str) -> bool:
        """True once ``peer``'s streak reaches the threshold."""
        return self.streak(peer) >= self.threshold


@frozen
class SpotCheck:
    """Decides which peers' tasks to re-execute locally.

    ``rate`` is the fraction checked for an untrusted peer; a trusted peer with streak ``n``
    is checked at ``min(rate, max(floor, 1 / n))``. ``key`` keys the choice so peers cannot
    predict it; leave it random except in tests.
    """

    rate: float = field(default=0.1, validator=[v.ge(0.0), v.le(1.0)])
    floor: float = field(default=0.01, validator=[v.ge(0.0), v.le(1.0)])
    trust: Trust = field(factory=Trust)
    key: bytes = field(factory=lambda: secrets.token_bytes(32), repr=False)

    def rate_for(self, peer: str) -> float:
        """The probability that one of ``peer``'s tasks is checked now."""
        streak = self.trust.streak(peer)
        if streak < self.trust.threshold:
            return self.rate
        return min(self.rate, max(self.floor, 1.0 / streak))

    def should_check(self, task_id: str, peer: str) -> bool:
        """True when ``peer``'s result for ``task_id`` should be re-executed locally."""
        digest = hashlib.blake2b(f"{task_id}:{peer}".encode(), key=self.key, digest_size=8).digest()
        draw = int.from_bytes(digest, "big") / 2**64
        return draw < self.rate_for(peer)

    def check(self, remote: TaskResult, local: TaskResult) -> Verdict:
        """:func:`compare` the results and update the peer's trust with the verdict."""
        verdict = compare(remote, local)
        self.trust.record(remote.node_id, verdict)
        return verdict
