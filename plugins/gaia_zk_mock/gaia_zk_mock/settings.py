"""The ``[zk_mock]`` config table: the simulated proving-time model and failure injection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cattrs
from attrs import field, frozen, validators as v

from gaia_core.plugin_api import ConfigError, codec

TABLE = "zk_mock"

_rate = [v.instance_of(float), v.ge(0.0), v.le(1.0)]
_seconds = [v.instance_of(float), v.ge(0.0)]


@frozen
class Settings:
    """How the mock prover behaves. Every key of ``[zk_mock]`` is optional.

    Simulated proving time = ``min(max_s, base_s + s_per_gigafuel * fuel_used / 1e9)``,
    multiplied by ``slow_factor`` for an injected slow proof. It is recorded in
    ``Proof.proving_s``; the prover really waits that long only when ``simulate_time``.
    """

    simulate_time: bool = field(default=True, validator=v.instance_of(bool))
    base_s: float = field(default=0.005, converter=float, validator=_seconds)
    s_per_gigafuel: float = field(default=0.05, converter=float, validator=_seconds)
    max_s: float = field(default=2.0, converter=float, validator=_seconds)
    invalid_rate: float = field(default=0.0, converter=float, validator=_rate)
    wrong_commitment_rate: float = field(default=0.0, converter=float, validator=_rate)
    slow_rate: float = field(default=0.0, converter=float, validator=_rate)
    slow_factor: float = field(default=10.0, converter=float, validator=[v.ge(1.0)])
    seed: int | None = field(default=None, validator=v.optional(v.instance_of(int)))

    def proving_s(self, fuel_used: int, *, slow: bool = False) -> float:
        """Simulated seconds to prove a run that used ``fuel_used`` fuel."""
        seconds = min(self.max_s, self.base_s + self.s_per_gigafuel * fuel_used / 1e9)
        return seconds * self.slow_factor if slow else seconds


_converter = cattrs.Converter(forbid_extra_keys=True)


def load(table: Mapping[str, Any]) -> Settings:
    """Settings from the ``[zk_mock]`` table, or a ConfigError naming the bad key."""
    try:
        return _converter.structure(dict(table), Settings)
    except cattrs.BaseValidationError as exc:
        raise ConfigError(f"config.toml: {codec.describe_errors(exc, f'[{TABLE}]')}",
                          hint="see the gaia-zk-mock README for the keys") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config.toml: [{TABLE}]: {exc}", hint="see the gaia-zk-mock README for the keys") from None
