"""Kernel command modules of the ``gaia`` CLI, one per area."""
