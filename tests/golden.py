"""What the hashing and scheduling tests share: the native module (if built), the golden vectors
(native/tests/golden.json, also read by ``cargo test``) and the replayer of scheduler operation lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

try:
    import gaia_native
except ImportError:  # the reference is still tested; native-only tests are skipped
    gaia_native = None  # type: ignore[assignment]

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "native" / "tests" / "golden.json").read_text())
needs_native = pytest.mark.skipif(gaia_native is None, reason="gaia_native is not installed (pip install ./native)")


def replay(scheduler: Any, ops: list[list]) -> list:
    """Apply ``ops`` (the golden-vector format) to ``scheduler``: one result per op, and
    ``("raises", ExceptionName)`` for an op that raised, so backends compare exactly."""
    out: list = []
    for name, *args in ops:
        try:
            if name == "push_many":
                out.append(scheduler.push_many([tuple(x) for x in args[0]]))
            elif name == "contains":
                out.append(args[0] in scheduler)
            elif name == "len":
                out.append(len(scheduler))
            else:
                out.append(getattr(scheduler, name)(*args))
        except Exception as exc:  # noqa: BLE001 - compared across backends
            out.append(("raises", type(exc).__name__))
    return out
