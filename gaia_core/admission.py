"""The kernel's admission checks, run by the node on every task before any queue sees it.

:meth:`gaia_core.node.Node.admit` runs :func:`check` itself, so a queue plugin that skips it
cannot let a bad task in; a queue may run it again (the signature outcome is cached per
envelope, so a second run is cheap). Checks run in a fixed order and the first failure raises
:class:`~gaia_core.errors.RejectedError` with a machine-readable ``reason``:

0. ``invalid``     not a Task at all
1. ``too_large``   module or input over ``[admission]`` limits, or more than :data:`MAX_BLOBS` blobs
2. ``bad_id``      the id the submitter claimed is not the task's content id
3. ``bad_module``  module bytes do not hash to ``module_id``
4. ``bad_signature`` envelope forged (or unsigned and not authenticated by the kernel's gate on a bound
   channel), or not sent by ``task.submitter``
5. ``no_runner``   no active runner for ``task.kind``
6. ``over_limits`` the task asks for more than this node offers
7. ``invalid``     the deadline is not a finite time (NaN, infinite)
   ``expired``     the deadline has already passed
8. whatever ``gaia_validate_task`` implementations raise (e.g. ``bad_module``)
"""

from __future__ import annotations

import math
import time
import weakref

from gaia_core.envelope import open_envelope
from gaia_core.errors import RejectedError, SignatureError
from gaia_core.inbound import authenticated_by
from gaia_core.model import Envelope, Task
from gaia_core.roles import NodeContext

#: The most blobs one task may name on this node (each is fetched before the task runs; docs/blobs.md).
MAX_BLOBS = 16

REASONS = ("too_large", "bad_id", "bad_module", "bad_signature", "no_runner", "over_limits",
           "expired", "queue_full", "invalid")


#: Outcomes of signature checks of envelopes still in use: one offer envelope carries many tasks.
_checked: weakref.WeakKeyDictionary[Envelope, str] = weakref.WeakKeyDictionary()


def _signature_failure(envelope: Envelope) -> str:
    """Why ``envelope``'s signature fails, or "" when it holds (checked once per envelope).

    An envelope the kernel's gate accepted (by its signature, or unsigned on a channel bound to the
    sender's signed record) holds without a second verification.
    """
    if authenticated_by(envelope) is not None:
        return ""
    failure = _checked.get(envelope)
    if failure is None:
        try:
            open_envelope(envelope)
            failure = ""
        except SignatureError as exc:
            failure = str(exc)
        _checked[envelope] = failure
    return failure


def check(task: Task, context: NodeContext, *, envelope: Envelope | None = None,
          claimed_id: str | None = None, now: float | None = None) -> None:
    """Run every admission check on ``task``; raise RejectedError on the first failure."""
    from gaia_core.hashing import content_id

    if not isinstance(task, Task):
        raise RejectedError("invalid", f"expected a Task, got {type(task).__name__}",
                            hint="decode the request with gaia_core.codec.decode(data, Task)")
    adm = context.config.admission
    if task.module is not None and len(task.module) > adm.max_module_bytes:
        raise RejectedError("too_large", f"module is {len(task.module)} bytes; this node takes at most "
                            f"{adm.max_module_bytes}", hint="shrink the module or find a node with a higher limit")
    if len(task.input) > adm.max_input_bytes:
        raise RejectedError("too_large", f"input is {len(task.input)} bytes; this node takes at most "
                            f"{adm.max_input_bytes}", hint="split the input across several tasks")
    if len(task.blobs) > MAX_BLOBS:
        raise RejectedError("too_large", f"task names {len(task.blobs)} blobs; this node fetches at most {MAX_BLOBS} "
                            "per task", hint="pack the files into fewer blobs (e.g. one tar)")
    if claimed_id is not None and claimed_id != task.id:
        raise RejectedError("bad_id", f"claimed task id {claimed_id[:16]}… is not the task's content id "
                            f"{task.id[:16]}…", hint="compute the id with gaia_core (Task.id)")
    if task.module is not None and content_id(task.module) != task.module_id:
        raise RejectedError("bad_module", "module bytes do not match module_id",
                            hint="send the module the id was computed from")
    if envelope is not None:
        failure = _signature_failure(envelope)
        if failure:
            raise RejectedError("bad_signature", failure, hint="sign tasks with the submitter's key")
        if task.submitter and envelope.sender != task.submitter:
            raise RejectedError("bad_signature", f"task names submitter {task.submitter[:12]} but was "
                                f"signed by {envelope.sender[:12]}", hint="sign tasks with the submitter's key")
    if task.kind not in context.task_kinds:
        raise RejectedError("no_runner", f"no runner for task kind {task.kind!r} on this node "
                            f"(runs: {', '.join(sorted(context.task_kinds)) or 'nothing'})",
                            hint="send it to a node that runs this kind")
    over = task.limits.exceeds(context.config.offer)
    if over:
        raise RejectedError("over_limits", "task asks for more than this node offers: " + "; ".join(over),
                            hint="lower the task's limits or find a node that offers more")
    if task.deadline is not None and not math.isfinite(task.deadline):
        raise RejectedError("invalid", f"task deadline is {task.deadline}, not a time",
                            hint="send a POSIX timestamp, or no deadline")
    if task.deadline is not None and task.deadline <= (time.time() if now is None else now):
        raise RejectedError("expired", "task deadline has already passed", hint="resubmit with a later deadline")
    if context.hook is not None:
        try:
            context.hook.gaia_validate_task(task=task, envelope=envelope, context=context)
        except RejectedError:
            raise
        except Exception as exc:
            raise RejectedError("invalid", f"{type(exc).__name__}: {exc}") from None
