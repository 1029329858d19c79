"""The plugin registers the zmq transport and ``gaia peers``; bad configuration is a typed error."""

from __future__ import annotations

import json

import attrs
import pytest
from click.testing import CliRunner

from gaia_core import plugins
from gaia_core.config import Config
from gaia_core.errors import ConfigError, NodeError, UsageError
from gaia_core.model import NodeRecord
from gaia_core.roles import NodeContext, Transport
from gaia_core.state import State
from gaia_core.testing.conformance.transport import RecordingHandler, wait_for

from gaia_comm_zmq.address import parse_address
from gaia_comm_zmq.commands import peers
from gaia_comm_zmq.transport import ZmqTransport


def test_entry_point_registers_the_transport(gaia_home) -> None:
    spec = plugins.load(["gaia-comm-zmq"]).one("transport")
    assert spec.name == "zmq" and spec.factory is ZmqTransport


def test_transport_satisfies_the_protocol(node_context) -> None:
    assert isinstance(ZmqTransport(node_context), Transport)


def _run_peers(home, *args: str):
    return CliRunner().invoke(peers, list(args), obj=State(home=str(home.root), plugin_list=None, debug=False))


def _listed(home) -> list[dict]:
    result = _run_peers(home, "--json")
    return json.loads(result.output)["peers"] if result.exit_code == 0 else []


def test_gaia_peers_lists_a_running_nodes_peers(gaia_home, identity, build) -> None:
    config = attrs.evolve(Config(), node=attrs.evolve(Config().node, listen="tcp://127.0.0.1:*"),
                          network=attrs.evolve(Config().network, heartbeat_s=0.2, down_after_s=1.0))
    node = ZmqTransport(NodeContext(config=config, home=gaia_home, identity=identity))
    other, other_rec = build()
    try:
        node.start(RecordingHandler(), NodeRecord(node_id=identity.node_id, curve_key=identity.curve_public))
        node.connect(other.start(RecordingHandler(), other_rec))
        wait_for(lambda: any(p["rtt_ms"] is not None for p in _listed(gaia_home)), "gaia peers to show an RTT")
        data = json.loads(_run_peers(gaia_home, "--json").output)
        assert data["node_id"] == identity.node_id
        row = data["peers"][0]
        assert row["node_id"] == other_rec.node_id and row["rtt_ms"] is not None and row["last_seen"] > 0
        table = _run_peers(gaia_home)
        assert table.exit_code == 0 and "up" in table.output
    finally:
        node.stop()
    result = _run_peers(gaia_home)
    assert isinstance(result.exception, NodeError) and result.exception.exit_code == 8


def test_gaia_peers_without_a_node_is_node_error(gaia_home) -> None:
    result = _run_peers(gaia_home, "--json")
    assert isinstance(result.exception, NodeError) and "gaia node" in str(result.exception)


@pytest.mark.parametrize(("network", "own", "match"), [
    ({"auth": "allowlist"}, {}, "allowlist is empty"),
    ({"allowlist": ["nope"]}, {}, "not a node id"),
    ({"heartbeat_s": 5.0, "down_after_s": 2.0}, {}, "must exceed"),
    ({}, {"retries": -1}, "comm_zmq"),
    ({}, {"colour": "red"}, "unknown key 'colour'"),
])
def test_bad_config_is_config_error(node_context, network, own, match) -> None:
    config = attrs.evolve(Config(), network=attrs.evolve(Config().network, **network), extra={"comm_zmq": own})
    with pytest.raises(ConfigError, match=match):
        ZmqTransport(attrs.evolve(node_context, config=config))


def test_wildcard_listen_needs_advertise(node_context, identity) -> None:
    config = attrs.evolve(Config(), node=attrs.evolve(Config().node, listen="tcp://0.0.0.0:*"))
    transport = ZmqTransport(attrs.evolve(node_context, config=config))
    record = NodeRecord(node_id=identity.node_id, curve_key=identity.curve_public)
    with pytest.raises(ConfigError, match="advertise"):
        transport.start(RecordingHandler(), record)


@pytest.mark.parametrize("address", ["10.0.0.1:7700", "tcp://10.0.0.1:7700", "tcp://h:1#abc", "inproc://x#" + "0" * 64])
def test_bad_address_is_usage_error(address: str) -> None:
    with pytest.raises(UsageError):
        parse_address(address, curve=True)
