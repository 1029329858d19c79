"""``gaia dashboard``: a local web page of the running node, updated live (docs/dashboard.md).

:class:`~gaia_core.dashboard.server.Dashboard` serves the page and a JSON API whose payloads are the
node's control-socket answers, the same ones ``gaia status --json``, ``peers --json``, ``task list
--json``, ``rewards --json`` and ``monitor --json`` print.
"""
