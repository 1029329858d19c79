"""The transport's own Curve key: created at first start (0600), kept across restarts, moved from an older home."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gaia_comm_zmq.keys import DIRECTORY, FILE, CurveKey
from gaia_comm_zmq.transport import ZmqTransport
from gaia_core.config import Config, Home
from gaia_core.errors import IdentityError
from gaia_core.identity import Identity, save_private_key
from gaia_core.inbound import Gate
from gaia_core.model import NodeRecord
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.transport import RecordingHandler


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _started_address(home: Home, identity: Identity, **own: object) -> str:
    """Start a transport on ``home`` and stop it; its dial address."""
    config = Config()
    config = attrs.evolve(config, node=attrs.evolve(config.node, listen="tcp://127.0.0.1:*"), extra={"comm_zmq": own})
    transport = ZmqTransport(NodeContext(config=config, home=home, identity=identity, log=logging.getLogger("t")))
    try:
        return transport.start(Gate(RecordingHandler()), NodeRecord(node_id=identity.node_id))
    finally:
        transport.stop()


def test_the_key_is_the_plugins_created_at_first_start_and_kept(tmp_path: Path) -> None:
    home, identity = Home(tmp_path), Identity.generate()
    identity.save(home.identity_dir)
    first = _started_address(home, identity)
    path = home.root / DIRECTORY / FILE
    assert _mode(path.parent) == 0o700 and _mode(path) == 0o600
    assert sorted(p.name for p in home.identity_dir.iterdir()) == ["node_ed25519.pem"]  # the kernel's: no Curve key
    assert first.partition("#")[2] == CurveKey.load_or_create(home).public.hex()
    assert _started_address(home, identity).partition("#")[2] == first.partition("#")[2]  # same key after a restart


def test_an_insecure_transport_makes_no_key(tmp_path: Path) -> None:
    home, identity = Home(tmp_path), Identity.generate()
    address = _started_address(home, identity, security="insecure")
    assert "#" not in address and not (home.root / DIRECTORY).exists()


def test_an_older_homes_key_is_moved_so_the_dial_address_stays(tmp_path: Path) -> None:
    home = Home(tmp_path)
    old = X25519PrivateKey.generate()
    save_private_key(home.identity_dir / FILE, old)  # where GAIA kept it before the key became the plugin's
    assert CurveKey.load_or_create(home) == CurveKey.of(old)
    assert not (home.identity_dir / FILE).exists() and _mode(home.root / DIRECTORY / FILE) == 0o600
    assert CurveKey.load_or_create(home) == CurveKey.of(old)


def test_a_key_file_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    home = Home(tmp_path)
    CurveKey.load_or_create(home)
    path = home.root / DIRECTORY / FILE
    path.chmod(0o644)
    with pytest.raises(IdentityError, match="accessible by other users") as info:
        CurveKey.load_or_create(home)
    assert f"chmod 600 {path}" in str(info.value) and "\n" not in str(info.value)
