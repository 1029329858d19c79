"""The plugin registers the zmq transport; bad configuration is a typed error."""

from __future__ import annotations

import attrs
import pytest

from gaia_comm_zmq.address import parse_address
from gaia_comm_zmq.transport import ZmqTransport
from gaia_core import plugins
from gaia_core.config import Config
from gaia_core.errors import ConfigError, UsageError
from gaia_core.inbound import Gate
from gaia_core.model import NodeRecord
from gaia_core.roles import Transport
from gaia_core.testing.conformance.transport import RecordingHandler


def test_entry_point_registers_the_transport(gaia_home) -> None:
    spec = plugins.load(["gaia-comm-zmq"]).one("transport")
    assert spec.name == "zmq" and spec.factory is ZmqTransport


def test_transport_satisfies_the_protocol(node_context) -> None:
    assert isinstance(ZmqTransport(node_context), Transport)


@pytest.mark.parametrize(("network", "own", "match"), [
    ({"auth": "allowlist"}, {}, "allowlist is empty"),
    ({"allowlist": ["nope"]}, {}, "not a node id"),
    ({"heartbeat_s": 5.0, "down_after_s": 2.0}, {}, "must exceed"),
    ({}, {"retries": -1}, "comm_zmq"),
    ({}, {"colour": "red"}, "unknown key 'colour'"),
    ({}, {"auth": "allowlist"}, r"\[comm_zmq\] auth = \"allowlist\" but the allowlist is empty"),
    ({}, {"allowlist": ["nope"]}, r"\[comm_zmq\] allowlist entry 'nope'"),
    ({}, {"security": "none"}, "comm_zmq"),
])
def test_bad_config_is_config_error(node_context, network, own, match) -> None:
    config = attrs.evolve(Config(), network=attrs.evolve(Config().network, **network), extra={"comm_zmq": own})
    with pytest.raises(ConfigError, match=match):
        ZmqTransport(attrs.evolve(node_context, config=config))


def test_wildcard_listen_needs_advertise(node_context, identity) -> None:
    config = attrs.evolve(Config(), node=attrs.evolve(Config().node, listen="tcp://0.0.0.0:*"))
    transport = ZmqTransport(attrs.evolve(node_context, config=config))
    record = NodeRecord(node_id=identity.node_id)
    with pytest.raises(ConfigError, match="advertise"):
        transport.start(Gate(RecordingHandler()), record)


@pytest.mark.parametrize("address", ["10.0.0.1:7700", "tcp://10.0.0.1:7700", "tcp://h:1#abc", "inproc://x#" + "0" * 64])
def test_bad_address_is_usage_error(address: str) -> None:
    with pytest.raises(UsageError):
        parse_address(address, curve=True)


def test_security_settings_are_the_plugins_own_and_network_is_still_read(node_context) -> None:
    friend = "ab" * 32
    own = {"security": "insecure", "auth": "allowlist", "allowlist": [friend]}
    config = attrs.evolve(Config(), extra={"comm_zmq": own})
    settings = ZmqTransport(attrs.evolve(node_context, config=config)).settings
    assert (settings.security, settings.auth, settings.allowlist) == ("insecure", "allowlist", frozenset({friend}))
    legacy = attrs.evolve(Config(), network=attrs.evolve(Config().network, security="insecure"))
    assert ZmqTransport(attrs.evolve(node_context, config=legacy)).settings.security == "insecure"
    both = attrs.evolve(legacy, extra={"comm_zmq": {"security": "curve"}})
    assert ZmqTransport(attrs.evolve(node_context, config=both)).settings.security == "curve"  # its own table wins
