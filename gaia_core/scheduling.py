"""The priority structure behind the node's task queue: ``Scheduler``.

Backed by the Rust module ``gaia_native`` when it loads, else by the pure-Python reference in
``gaia_core._reference.scheduling`` (same pop order, much slower) with a ``RuntimeWarning``.
``BACKEND`` says which is active ("native" or "python"); ``BACKEND_ERROR`` says why the native
module is not in use (``None`` when it is). Set ``GAIA_BACKEND=python`` to force the reference.

Pop order: (1) highest priority first (strict classes); (2) inside the top class, fair share among
submitters by virtual time (served / weight; each pop adds cost / weight; a submitter becoming
active starts at max(own, smallest active virtual time)); ties by earliest head deadline, then
arrival; (3) inside one submitter: earliest deadline first (None = +inf), then FIFO.
See ``Scheduler.__doc__`` for the details.
"""

from __future__ import annotations

from gaia_core._backend import load

__all__ = ["BACKEND", "BACKEND_ERROR", "Scheduler"]

_impl, BACKEND, BACKEND_ERROR = load("gaia_core.scheduling", "gaia_core._reference.scheduling")

Scheduler = _impl.Scheduler
