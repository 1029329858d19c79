"""The cached report: JSON under the node's cache dir, with its time and whether it was quick.

A cached report is used while younger than ``max_age_s``; one that is stale,
from a quick run when a full one is wanted, measured under another configuration
(its ``config`` fingerprint: cores offered, energy-model settings), or unreadable
in any way is ignored (and so re-measured), never an error.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from gaia_core.plugin_api import BenchmarkReport, CodecError, codec

FORMAT = 2  # 2: reports carry the role's score
FILENAME = "bench-psutil.json"


class ReportCache:
    """One JSON file holding the last report of this provider."""

    def __init__(self, path: Path, max_age_s: float, config: str = "") -> None:
        self.path = path
        self.max_age_s = max_age_s
        self.config = config  # what the measurement depends on; a report measured under another is stale
        #: Why the last :meth:`load` found nothing usable ("" after a hit).
        self.reason = ""

    def load(self, *, quick: bool) -> BenchmarkReport | None:
        """The cached report when fresh enough and at least as thorough as asked, else None."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"not a format-{FORMAT} report")
            report = codec.structure(data["report"], BenchmarkReport)
            was_quick = data["quick"]
            config = data.get("config", "")
        except FileNotFoundError:
            self.reason = "no cached report"
            return None
        except (OSError, ValueError, KeyError, TypeError, CodecError) as exc:
            self.reason = f"cached report {self.path} is corrupt ({exc}); re-measuring"
            return None
        age = time.time() - report.measured_at
        if not 0 <= age <= self.max_age_s:
            self.reason = f"cached report is {age:.0f} s old (max {self.max_age_s:.0f} s)"
            return None
        if config != self.config:
            self.reason = "the configuration changed since the cached report (cores offered or [bench-psutil])"
            return None
        if was_quick is not False and not quick:
            self.reason = "cached report is from a quick run"
            return None
        self.reason = ""
        return report

    def save(self, report: BenchmarkReport, *, quick: bool) -> None:
        """Write ``report`` atomically (a crash leaves the old file or the new one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        payload = {"format": FORMAT, "quick": quick, "config": self.config, "report": codec.unstructure(report)}
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, self.path)
