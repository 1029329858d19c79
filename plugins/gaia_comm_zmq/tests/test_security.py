"""CurveZMQ and ZAP: peers without keys, with a wrong server key, or off the allow-list are refused."""

from __future__ import annotations

import logging
import time

import pytest

from gaia_comm_zmq.keys import CurveKey
from gaia_core.config import Home
from gaia_core.errors import NodeError
from gaia_core.identity import Identity
from gaia_core.inbound import Gate
from gaia_core.testing.conformance.transport import RecordingHandler, wait_for

#: How long a refused peer is given to (wrongly) get in; bounded, and well above a loopback handshake.
SETTLE_S = 1.5


def _start(build, **network):
    transport, record = build(**network)
    address = transport.start(Gate(RecordingHandler()), record)
    return transport, record, address


def _never_meet(a, b) -> None:
    time.sleep(SETTLE_S)
    assert not a.peers() and not b.peers()


def test_client_without_keys_is_refused(build) -> None:
    server, server_rec, address = _start(build)
    client, _, _ = _start(build, security="insecure")
    client.connect(address.partition("#")[0])
    _never_meet(server, client)
    with pytest.raises(NodeError, match="unknown peer"):
        client.request(server_rec.node_id, "echo", b"x", timeout=1)


def test_wrong_server_key_is_refused(build) -> None:
    server, _, address = _start(build)
    client, _, _ = _start(build)
    endpoint = address.partition("#")[0]
    client.connect(f"{endpoint}#{CurveKey.generate().public.hex()}")
    _never_meet(server, client)


def test_peer_off_the_allowlist_is_refused(build, tmp_path) -> None:
    friend = Identity.generate()
    server, server_rec, address = _start(build, auth="allowlist", allowlist=[friend.node_id])
    stranger_id = Identity.generate()
    stranger, stranger_rec, _ = _start(build, identity=stranger_id)
    stranger.connect(address)
    wait_for(lambda: server.stats()["rejected"].get("not_allowed", 0) >= 1, "the stranger's hello to be refused")
    wait_for(lambda: stranger.stats()["counts"].get("refused_by_peer", 0) >= 1, "the stranger to hear the refusal")
    assert not server.peers() and not stranger.peers()

    again, _, _ = _start(build, identity=stranger_id, home=Home(tmp_path / stranger_rec.name))  # same node, same key
    again.connect(address)
    wait_for(lambda: server.stats()["rejected"].get("zap_denied", 0) >= 1, "the refused key to be denied at ZAP")

    ally, ally_rec, _ = _start(build, identity=friend)
    ally.connect(address)
    wait_for(lambda: any(p.node_id == server_rec.node_id and p.state == "up" for p in ally.peers()),
             "the allow-listed peer to get in")
    assert ally.request(server_rec.node_id, "echo", b"friend", timeout=5) == b"friend"
    assert {p.node_id for p in server.peers()} == {ally_rec.node_id}


def test_insecure_mode_says_so_in_the_log(build, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="gaia.test"):
        _start(build, security="insecure")
    assert any("INSECURE" in r.getMessage() for r in caplog.records)


def test_curve_address_carries_the_key(build) -> None:
    transport, _, address = _start(build)
    endpoint, _, key = address.partition("#")
    assert endpoint.startswith("tcp://127.0.0.1:") and len(key) == 64


def test_allowlist_also_bounds_the_peers_a_node_dials(build) -> None:
    b, b_rec, b_address = _start(build)
    c, c_rec, _ = _start(build)
    c.connect(b_address)
    wait_for(lambda: any(p.node_id == c_rec.node_id for p in b.peers()), "B to know C")
    a, _, _ = _start(build, auth="allowlist", allowlist=[b_rec.node_id])
    a.connect(b_address)
    wait_for(lambda: any(p.node_id == b_rec.node_id and p.state == "up" for p in a.peers()), "A to reach B")
    time.sleep(SETTLE_S)  # B's peer exchange has had time to offer C to A
    assert {p.node_id for p in a.peers()} == {b_rec.node_id}
    with pytest.raises(NodeError):
        a.request(c_rec.node_id, "echo", b"secret task input", timeout=1)


def test_the_curve_key_travels_in_the_records_transport_extension(build) -> None:
    transport, _, address = _start(build)
    assert transport.record.transport == {"curve": bytes.fromhex(address.partition("#")[2])}
    insecure, _, _ = _start(build, security="insecure")
    assert insecure.record.transport == {}  # no channel it could vouch for
