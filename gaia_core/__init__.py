"""GAIA: a node that contributes a machine to a decentralized AI compute network.

Plugins implement the hooks in :mod:`gaia_core.hookspecs` with
``from gaia_core import hookimpl``.
"""

import pluggy

__version__ = "0.1.0"

#: Marker for plugin hook implementations.
hookimpl = pluggy.HookimplMarker("gaia")

__all__ = ["__version__", "hookimpl"]
