"""Test kit for GAIA and its plugins.

Opt in from a ``conftest.py``::

    pytest_plugins = ["gaia_core.testing.fixtures"]

and subclass the conformance suite of your plugin's role from
:mod:`gaia_core.testing.conformance` (as zarr's ``StoreTests``).
"""
