"""The submitting half of a node: jobs split into tasks, dispatched to peers, verified and credited.

* :mod:`gaia_core.jobs.messages`: the typed records exchanged with workers (offer answers, result acks,
  settlements).
* :mod:`gaia_core.jobs.jobstore`: every SQL statement about jobs and their tasks.
* :mod:`gaia_core.jobs.dispatcher`: which task goes to which node, re-sends, adaptive timeouts.
* :mod:`gaia_core.jobs.settlement`: verification of a result and the credit it earns.
* :mod:`gaia_core.jobs.earnings`: the worker's side: credit its submitters report.
* :mod:`gaia_core.jobs.manager`: :class:`JobManager`, which the node composes.
"""

from gaia_core.jobs.manager import JobManager

__all__ = ["JobManager"]
