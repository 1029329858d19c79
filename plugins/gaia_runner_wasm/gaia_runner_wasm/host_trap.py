"""Traps raised by the runner's host import modules (``gaia_tensor``, ``gaia_blob``), kept per thread.

wasmtime-py hands a host function's exception to the caller through one process-wide variable, so with
several worker threads a trap raised by one run's host call can reach another thread's run. A host call
therefore traps through :func:`trap`, which also keeps the reason for the run under way on its own thread
(:func:`watching`), and the runner takes the reason from there (:func:`trap_reason`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import wasmtime


class HostTrap(wasmtime.Trap):
    """A trap raised by a host call (told apart from the engine's own traps)."""


class _Run(threading.local):
    """Whether a run is under way on this thread, and why a host call of it trapped (the guest ends at the first)."""

    active: bool = False
    reason: str | None = None


_run = _Run()


@contextmanager
def watching() -> Iterator[None]:
    """Keep the reason of a host call's trap for the run under way on this thread (one run at a time)."""
    _run.active, _run.reason = True, None
    try:
        yield
    finally:
        _run.active, _run.reason = False, None


def trap(reason: str) -> NoReturn:
    """End the guest's run with ``reason``, kept for this thread's run as well (see :func:`trap_reason`)."""
    if _run.active:
        _run.reason = reason
    raise HostTrap(reason) from None


def trap_reason(exc: Exception) -> str | None:
    """Why the run under way on this thread trapped in a host call, or None when it did not.

    ``exc`` is what the run raised: a trap of another thread's call that wasmtime-py delivered here
    is not taken for this run's reason (this run's own trap is then unknown, and said so).
    """
    if _run.reason is not None:
        return _run.reason
    if isinstance(exc, HostTrap):
        return "trap of unknown kind (wasmtime-py delivered another task's host-call error in its place)"
    return None
