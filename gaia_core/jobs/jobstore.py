"""The job store: every SQL statement about this node's jobs and their tasks (tables in ``state.db``).

A job row is ``running``, ``finished`` or ``cancelled``; a task row is ``pending``, ``done``,
``failed`` or ``cancelled``. Outcomes are written behind (the store flushes every 0.2 s and before
every read); a job and its tasks are written in one transaction before anything runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from gaia_core import codec
from gaia_core.errors import NodeError
from gaia_core.model import JobStatus, Proof, Task, TaskResult, TaskState
from gaia_core.store import Store
from gaia_core.verification import Tolerance

_JOB_PREFIX = re.compile(r"[0-9a-f]{1,32}\Z")
_HINT = "list jobs with `gaia task list`"
#: A job's task outcome rows, in task order (:meth:`JobStore.results`).
RESULTS_SQL = "SELECT idx, id, state, result, peers, attempts, reason FROM tasks WHERE job = ? ORDER BY idx"
#: :data:`RESULTS_SQL` with each task's ``task`` and ``proof`` frames and the ``seal`` of its result
#: (an :class:`~gaia_core.evidence.ItemSeal` frame, or None).
RESULTS_WITH_PROOFS_SQL = ("SELECT t.idx, t.id, t.state, t.result, t.peers, t.attempts, t.reason, t.task, p.proof, "
                           "s.seal FROM tasks t LEFT JOIN proofs p ON p.job = t.job AND p.idx = t.idx "
                           "LEFT JOIN seals s ON s.job = t.job AND s.idx = t.idx "
                           "WHERE t.job = ? ORDER BY t.idx")


class UnknownJobError(NodeError):
    """No job of this node has the id given, several start with the prefix given, or it is not hex (exit 9)."""

    exit_code = 9


def check_job_prefix(prefix: object) -> str:
    """``prefix`` in lowercase when it can start a job id (1 to 32 hex characters); UnknownJobError otherwise."""
    if not isinstance(prefix, str) or not _JOB_PREFIX.match(prefix.lower()):
        raise UnknownJobError(f"{str(prefix)[:40]!r} is not a job id: expected hex characters", hint=_HINT)
    return prefix.lower()


def one_job(prefix: str, matches: list[str]) -> str:
    """The one id of ``matches`` (the jobs ``prefix`` matched); UnknownJobError when none or several."""
    if not matches:
        raise UnknownJobError(f"no job {prefix!r} on this node", hint=_HINT)
    if len(matches) > 1:
        raise UnknownJobError(f"job id prefix {prefix!r} is ambiguous: it matches {', '.join(matches[:2])}, ...",
                              hint="give more characters of the job id")
    return matches[0]


class JobStore:
    """This node's jobs and tasks in ``state.db``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, job: str, name: str, redundancy: int, spot_check: float, tasks: list[Task],
               to: str | None, tolerance: Tolerance | None = None, frames: Sequence[bytes] | None = None) -> None:
        """Write a job, its ``tolerance`` (None: replicas compared byte for byte) and its tasks in one
        transaction; ``frames``, when given, are the tasks' codec frames as decoded (not encoded again)."""
        now = time.time()
        encoded = frames if frames is not None else [codec.encode(task) for task in tasks]
        with self.store.batch():
            self.store.defer("INSERT INTO jobs VALUES (?, ?, ?, 'running', ?, ?, NULL)",
                             (job, name, now, redundancy, spot_check))
            if tolerance is not None:
                self.store.defer("INSERT INTO tolerances VALUES (?, ?, ?, ?)",
                                 (job, tolerance.rtol, tolerance.atol, tolerance.floats))
            for i, (task, frame) in enumerate(zip(tasks, encoded, strict=True)):
                self.store.defer("INSERT INTO tasks (id, job, idx, state, task, peers, updated) "
                                 "VALUES (?, ?, ?, 'pending', ?, ?, ?)",
                                 (task.id, job, i, frame, to or "", now))

    def resolve(self, prefix: str) -> str:
        """The id of the one job whose id starts with ``prefix``; UnknownJobError when none or several do."""
        prefix = check_job_prefix(prefix)
        return one_job(prefix, [r[0] for r in self.store.execute(
            "SELECT id FROM jobs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 3", (len(prefix), prefix))])

    def tolerance(self, job: str) -> Tolerance | None:
        """How ``job``'s replicas are compared: its Tolerance, or None (byte for byte)."""
        rows = self.store.execute("SELECT rtol, atol, floats FROM tolerances WHERE job = ?", (job,))
        return Tolerance(*rows[0]) if rows else None

    def unfinished(self) -> list[dict[str, Any]]:
        """The pending tasks of running jobs, with the job's redundancy (for resuming)."""
        return list(self.store.rows("SELECT t.job, t.idx, t.task, t.peers, j.redundancy FROM tasks t "
                                    "JOIN jobs j ON j.id = t.job WHERE j.status = 'running' AND t.state = 'pending'"))

    def failed(self, job: str) -> list[dict[str, Any]]:
        """A job's failed tasks, with the job's redundancy (for retrying)."""
        return list(self.store.rows("SELECT t.job, t.idx, t.task, t.peers, j.redundancy FROM tasks t "
                                    "JOIN jobs j ON j.id = t.job WHERE t.job = ? AND t.state = 'failed'", (job,)))

    def close_finished_jobs(self) -> None:
        """Mark running jobs with no pending task finished."""
        self.store.execute("UPDATE jobs SET status = 'finished', finished = ? WHERE status = 'running' AND id NOT IN "
                           "(SELECT job FROM tasks WHERE state = 'pending')", (time.time(),))

    def counts(self, job: str) -> dict[str, int]:
        """A job's tasks by state."""
        return dict(self.store.execute("SELECT state, COUNT(*) FROM tasks WHERE job = ? GROUP BY state", (job,)))

    def job(self, job: str) -> tuple[JobStatus, str, float, float | None]:
        """A job's (status, name, created, finished); UnknownJobError when there is none."""
        rows = self.store.execute("SELECT status, name, created, finished FROM jobs WHERE id = ?", (job,))
        if not rows:
            raise UnknownJobError(f"no job {job!r} on this node", hint=_HINT)
        status, name, created, finished = rows[0]
        return JobStatus(status), name, created, finished

    def finish_task(self, job: str, idx: int, state: TaskState, *, reason: str = "", result: TaskResult | None = None,
                    peers: str | None = None, attempts: int = 0, proof: Proof | None = None,
                    seal: bytes | None = None) -> None:
        """Record a task's final ``state`` (written behind), with the verified ``proof`` of its ``result`` and
        the worker's ``seal`` over them (an ItemSeal frame); ``peers`` None keeps the column."""
        self.store.defer("UPDATE tasks SET state = ?, reason = ?, result = ?, peers = COALESCE(?, peers), "
                         "attempts = ?, updated = ? WHERE job = ? AND idx = ?",
                         (state, reason, codec.encode(result) if result else None, peers, attempts, time.time(),
                          job, idx))
        if proof is not None and result is not None:
            self.store.defer("INSERT OR REPLACE INTO proofs (job, idx, proof) VALUES (?, ?, ?)",
                             (job, idx, codec.encode(proof)))
            if seal is not None:
                self.store.defer("INSERT OR REPLACE INTO seals (job, idx, seal) VALUES (?, ?, ?)", (job, idx, seal))

    def finish_job(self, job: str, status: JobStatus = JobStatus.FINISHED) -> None:
        """Record that a job ended (written behind)."""
        self.store.defer("UPDATE jobs SET status = ?, finished = ? WHERE id = ?", (status, time.time(), job))

    def cancel_pending(self, job: str) -> int:
        """Cancel every pending task of ``job`` and the job itself; return how many tasks were cancelled."""
        with self.store.batch():
            pending = self.store.execute("SELECT COUNT(*) FROM tasks WHERE job = ? AND state = 'pending'", (job,))[0][0]
            self.store.defer("UPDATE tasks SET state = 'cancelled', reason = 'cancelled by its owner', updated = ? "
                             "WHERE job = ? AND state = 'pending'", (time.time(), job))
            self.finish_job(job, JobStatus.CANCELLED)
        return pending

    def requeue(self, job: str, indexes: list[int]) -> None:
        """Make the tasks ``indexes`` of ``job`` pending again and the job running."""
        with self.store.batch():
            self.store.defer("UPDATE jobs SET status = 'running', finished = NULL WHERE id = ?", (job,))
            for idx in indexes:
                self.store.defer("UPDATE tasks SET state = 'pending', reason = '', result = NULL, attempts = 0, "
                                 "updated = ? WHERE job = ? AND idx = ?", (time.time(), job, idx))
                self.store.defer("DELETE FROM proofs WHERE job = ? AND idx = ?", (job, idx))
                self.store.defer("DELETE FROM seals WHERE job = ? AND idx = ?", (job, idx))

    def quarantine(self, job: str, idx: int, reason: str) -> None:
        """Fail a stored task that no longer decodes, keeping the node able to start."""
        self.store.execute("UPDATE tasks SET state = 'failed', reason = ?, updated = ? WHERE job = ? AND idx = ?",
                           (f"quarantined: {reason}"[:500], time.time(), job, idx))

    def results(self, job: str, *, proofs: bool = False) -> Iterator[dict[str, Any]]:
        """Every task's outcome row of ``job``, in task order; ``proofs`` adds each task's ``task`` and ``proof``
        frames (None once purged, or when no verified result decided the task)."""
        return self.store.rows(RESULTS_WITH_PROOFS_SQL if proofs else RESULTS_SQL, (job,))

    def release(self, job: str) -> None:
        """Delete a finished job's payloads."""
        self.store.purge_payloads(job)

    def released(self, jobs: list[str]) -> list[str]:
        """Those of ``jobs`` whose payloads are gone (released, pruned by the retention, or never stored)."""
        marks = ",".join("?" * len(jobs))
        kept = {row[0] for row in self.store.execute(
            f"SELECT DISTINCT job FROM tasks WHERE job IN ({marks}) AND task IS NOT NULL", tuple(jobs))}
        return [job for job in jobs if job not in kept]

    def recent(self, limit: int) -> list[str]:
        """The ids of the ``limit`` most recent jobs."""
        return [r[0] for r in self.store.execute("SELECT id FROM jobs ORDER BY created DESC LIMIT ?", (limit,))]

    def summary(self) -> dict[str, int]:
        """Jobs by status."""
        return dict(self.store.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
