"""The plugin's configuration: the ``[bench-psutil]`` table of config.toml."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import field, frozen, validators as v

from gaia_core.plugin_api import Config, ConfigError

#: The config table this plugin reads.
SECTION = "bench-psutil"
_positive = v.and_(v.instance_of((int, float)), v.gt(0.0))


@frozen
class Settings:
    """Cache age, sampling rate and the energy model's constants."""

    cache_max_age_s: float = field(default=86_400.0, validator=_positive)
    sample_interval_s: float = field(default=1.0, validator=_positive)
    cpu_tdp_w: float = field(default=85.0, validator=_positive)
    watts_per_core: float | None = field(default=None, validator=v.optional(_positive))
    powercap_root: Path = field(default=Path("/sys/class/powercap"), converter=Path)

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        """Read ``[bench-psutil]``; a ConfigError names the bad key and the fix."""
        return cls.from_mapping(config.section(SECTION))

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> Settings:
        """Build from a plain table, refusing unknown keys and bad values."""
        known = {"cache_max_age_s", "sample_interval_s", "cpu_tdp_w", "watts_per_core", "powercap_root"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"[{SECTION}] has unknown key(s) {unknown}; known: {sorted(known)}",
                              hint="fix config.toml (see the gaia-bench-psutil README)")
        try:
            return cls(**table)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[{SECTION}] {exc}", hint="use positive numbers for times and watts") from None

    def per_core_w(self, logical_cores: int) -> float:
        """Watts one fully busy logical core draws in the estimate (``cpu_tdp_w`` / cores by default)."""
        return self.watts_per_core if self.watts_per_core is not None else self.cpu_tdp_w / max(1, logical_cores)
