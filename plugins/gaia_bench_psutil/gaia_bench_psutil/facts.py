"""Building report entries that degrade to ``unknown`` with a reason instead of raising."""

from __future__ import annotations

from collections.abc import Callable

import psutil

from gaia_core.plugin_api import Measurement

PROVIDER = "psutil"
#: What reading a /proc or /sys entry, or a driver, may raise on a locked-down machine.
READ_ERRORS = (OSError, psutil.Error, ValueError, RuntimeError, AttributeError, IndexError, KeyError)


def entry(name: str, value: float | int | str | None, unit: str = "", source: str = "measured",
          reason: str = "") -> Measurement:
    """One figure of this provider's report."""
    return Measurement(name=name, value=value, unit=unit, source=source, reason=reason, provider=PROVIDER)


def unknown(name: str, reason: str, unit: str = "") -> Measurement:
    """A figure that could not be obtained, and why."""
    return entry(name, None, unit, "unknown", reason)


def describe(exc: BaseException) -> str:
    """A one-line reason for an ``unknown`` figure."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def read(name: str, unit: str, source: str, reader: Callable[[], float | int | str | None]) -> Measurement:
    """``reader()`` as an entry, or ``unknown`` with the reason when it fails or finds nothing."""
    try:
        value = reader()
    except READ_ERRORS as exc:
        return unknown(name, describe(exc), unit)
    if value is None or value == "":
        return unknown(name, "not reported by this system", unit)
    return entry(name, value, unit, source)
