"""Where the hot path comes from: the Rust module ``gaia_native``, else its Python backend.

``GAIA_BACKEND=python`` forces the Python backend quietly; otherwise a failed native
import falls back with a ``RuntimeWarning`` that says how to fix it.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType


def load(facade: str, reference: str) -> tuple[ModuleType, str, str | None]:
    """(module, backend name, why the native module is not in use) for the facade ``facade``."""
    if os.environ.get("GAIA_BACKEND", "").strip().lower() == "python":
        return importlib.import_module(reference), "python", "disabled by GAIA_BACKEND=python"
    try:
        return importlib.import_module("gaia_native"), "native", None
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken/ABI-incompatible build
        error = f"{type(exc).__name__}: {exc}"
    warnings.warn(
        f"{facade}: the native module gaia_native could not be loaded ({error}); using the Python "
        "backend, which gives the same results but is slower. Fix: `pip install gaia-native` "
        "(or `make install` in a source checkout), or set GAIA_BACKEND=python to use the Python "
        "backend without this warning.",
        RuntimeWarning,
        stacklevel=3,
    )
    return importlib.import_module(reference), "python", error
