from __future__ import annotations

import pytest

from gaia_core.testing.conformance.transport import TransportTests


class TestZmqCurve(TransportTests):
    """The kernel's transport suite, CurveZMQ on (the default)."""

    @pytest.fixture
    def make_transport(self, build):
        return build


class TestZmqInsecure(TransportTests):
    """The same suite in plaintext mode (--insecure)."""

    @pytest.fixture
    def make_transport(self, build):
        return lambda: build(security="insecure")
