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

import os
import warnings

__all__ = ["BACKEND", "BACKEND_ERROR", "Scheduler"]

BACKEND: str
BACKEND_ERROR: str | None
_FORCED = os.environ.get("GAIA_BACKEND", "").strip().lower() == "python"

try:
    if _FORCED:
        raise ImportError("disabled by GAIA_BACKEND=python")
    from gaia_native import Scheduler

    BACKEND, BACKEND_ERROR = "native", None
except Exception as exc:  # noqa: BLE001 - ImportError, or a broken/ABI-incompatible build
    from ._reference.scheduling import Scheduler  # type: ignore[assignment]

    BACKEND, BACKEND_ERROR = (
        "python",
        str(exc) if _FORCED else f"{type(exc).__name__}: {exc}",
    )
    if not _FORCED:
        warnings.warn(
            f"gaia_core.scheduling: the native module gaia_native could not be loaded ({BACKEND_ERROR}); "
            "using the pure-Python reference, which gives the same order but is far slower. "
            "Fix: `pip install gaia-native` (or `make install` in a source checkout), "
            "or set GAIA_BACKEND=python to use the reference without this warning.",
            RuntimeWarning,
            stacklevel=2,
        )
