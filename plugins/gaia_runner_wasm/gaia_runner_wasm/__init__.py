"""gaia-runner-wasm: run GAIA tasks of kind ``wasm`` in a wasmtime sandbox.

:class:`WasmRunner` is the provider (registered by :mod:`gaia_runner_wasm.plugin`);
:mod:`gaia_runner_wasm.workloads` builds tasks for the shipped matmul, MLP inference and
SGD training modules.
"""

from gaia_runner_wasm.runner import WasmRunner
from gaia_runner_wasm.settings import Metering, RunnerSettings

__version__ = "0.1.0"

__all__ = ["Metering", "RunnerSettings", "WasmRunner", "__version__"]
