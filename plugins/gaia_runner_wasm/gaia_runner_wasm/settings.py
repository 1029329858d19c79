"""The runner's settings: the ``[runner_wasm]`` config table, validated."""

from __future__ import annotations

import os

from attrs import field, frozen, validators as v

from gaia_core.plugin_api import Config


@frozen
class Metering:
    """Which budgets the engine meters. Both stay on in a node; turning one off is for benchmarks."""

    fuel: bool = True
    epochs: bool = True


@frozen
class RunnerSettings:
    """``[runner_wasm]``: how the WebAssembly runner uses this machine."""

    #: Compiled modules kept in memory (least recently used are dropped first).
    cache_modules: int = field(default=256, validator=v.ge(1))
    #: Keep compiled artifacts on disk under ``<home>/cache/wasm`` so a module compiles once per node.
    disk_cache: bool = True
    #: Worker threads for ``submit``/``run_many``; 0 = the cores the node offers (``[node] cores``).
    workers: int = field(default=0, validator=v.ge(0))
    #: Epoch tick in milliseconds: the resolution of the wall-clock timeout.
    tick_ms: float = field(default=10.0, validator=[v.gt(0), v.le(1000)])
    #: Host environment variables a task granted ``env`` may read (none by default).
    env: list[str] = field(factory=list)

    @classmethod
    def from_config(cls, config: Config) -> RunnerSettings:
        """Read and check the ``[runner_wasm]`` table (ConfigError naming the bad key)."""
        return config.section_as("runner_wasm", cls)

    def worker_count(self, config: Config) -> int:
        """How many worker threads to run: the setting, else the cores offered, else every core."""
        return self.workers or config.node.cores or os.cpu_count() or 1

