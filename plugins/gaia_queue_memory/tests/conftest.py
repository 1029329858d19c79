pytest_plugins = ["gaia_core.testing.fixtures"]
