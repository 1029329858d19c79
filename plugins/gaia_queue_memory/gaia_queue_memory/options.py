"""The plugin's own ``[queue-memory]`` config table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from gaia_core.plugin_api import ConfigError

#: Name of the config table this plugin reads.
SECTION = "queue-memory"


@frozen
class QueueOptions:
    """``shares``: submitter id -> fair-share weight (default 1.0 each);
    ``submitter_share``: the fraction of ``[queue] capacity`` and ``capacity_bytes`` one submitter may hold;
    ``wait_samples``: how many recent wait times the percentiles are taken over."""

    shares: Mapping[str, float] = field(factory=dict)
    submitter_share: float = 0.5
    wait_samples: int = 4096

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> QueueOptions:
        """Read and check the table; ConfigError naming the bad key otherwise."""
        unknown = set(section) - {"shares", "submitter_share", "wait_samples"}
        if unknown:
            raise ConfigError(f"[{SECTION}] has unknown keys {sorted(unknown)}",
                              hint="known keys: shares, submitter_share, wait_samples")
        shares = section.get("shares", {})
        if not isinstance(shares, Mapping):
            raise ConfigError(f"[{SECTION}] shares must be a table of submitter id = weight",
                              hint=f'e.g. [{SECTION}.shares] followed by "<node id>" = 2.0')
        checked: dict[str, float] = {}
        for submitter, weight in shares.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (
                    math.isfinite(weight) and weight > 0):
                raise ConfigError(f"[{SECTION}.shares] {submitter!r} = {weight!r} is not a positive number",
                                  hint="weights are relative, e.g. 1.0 or 2.5")
            checked[str(submitter)] = float(weight)
        share = section.get("submitter_share", 0.5)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ConfigError(f"[{SECTION}] submitter_share = {share!r} must be a fraction in (0, 1]",
                              hint="e.g. submitter_share = 0.5: one submitter holds at most half the queue")
        samples = section.get("wait_samples", 4096)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples <= 0:
            raise ConfigError(f"[{SECTION}] wait_samples = {samples!r} must be a positive integer",
                              hint="e.g. wait_samples = 4096")
        return cls(shares=checked, submitter_share=float(share), wait_samples=samples)
