"""``python -m gaia_core`` runs the ``gaia`` command line."""

from gaia_core.cli import main

main()
