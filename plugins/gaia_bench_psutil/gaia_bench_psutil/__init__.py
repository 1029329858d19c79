"""gaia-bench-psutil: what this machine can do (benchmarks) and what it is doing now (samples).

The node reaches all of this through the provider that ``gaia_benchmarks``
registers; import from here only in tools and tests.
"""

from gaia_bench_psutil.energy import EnergyModel, TaskAccount, account
from gaia_bench_psutil.provider import PsutilBenchmark
from gaia_bench_psutil.sampler import Sampler
from gaia_bench_psutil.settings import Settings

__version__ = "0.1.0"
__all__ = ["EnergyModel", "PsutilBenchmark", "Sampler", "Settings", "TaskAccount", "__version__", "account"]
